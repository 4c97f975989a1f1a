"""band's HTTP edge: hits become NATS messages (enrich → handle → listen) and come back
as pixels, redirects and JSON. ``python -m broker`` or ``band edge`` runs it."""

from .app import make_app
from .config import EdgeConfig, from_env
from .pipeline import Pipeline

__all__ = ["make_app", "EdgeConfig", "from_env", "Pipeline"]
