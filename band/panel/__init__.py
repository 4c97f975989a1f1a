"""``band panel``: the operator's web panel and its JSON / JSON-RPC 2.0 API.

Importing it does nothing; :func:`band.panel.app.serve` runs it.
"""

from __future__ import annotations

from .config import PanelConfig, PanelConfigError, from_env

__all__ = ["PanelConfig", "PanelConfigError", "from_env"]
