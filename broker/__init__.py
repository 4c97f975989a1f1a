"""band's HTTP edge: hits become NATS messages (enrich → handle → listen) and come back
as pixels, redirects and JSON. ``python -m broker`` or ``band edge`` runs it.

The names below load their modules on first use: ``band --help`` reads the edge's flags
(:mod:`broker.command`) without importing the edge itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import make_app
    from .config import EdgeConfig, from_env
    from .pipeline import Pipeline

_HOMES = {"make_app": "app", "EdgeConfig": "config", "from_env": "config", "Pipeline": "pipeline"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'broker' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)


__all__ = ["EdgeConfig", "Pipeline", "from_env", "make_app"]
