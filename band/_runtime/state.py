"""Where a running ``band up`` leaves its addresses for the other commands run beside it.

``band up`` writes ``./.band/nats.url`` (the nats-server it started) and
``./.band/edge.url`` (its edge), and removes both when it stops; ``band ls``, ``band sql``,
``band demo`` and the rest, run in the same directory, read them, so a second terminal
needs no setup. Paths are relative to the directory the command runs in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

__all__ = ["STATE_DIR", "URL_FILE", "EDGE_FILE", "written", "edge_url"]

STATE_DIR = Path(".band")
URL_FILE = STATE_DIR / "nats.url"
EDGE_FILE = STATE_DIR / "edge.url"


def written(path: Path) -> str:
    """The URL ``band up`` wrote to ``path``, or ``""`` when there is none."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def edge_url(flag: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The edge to send hits to: ``flag``, else ``./.band/edge.url``, else
    ``http://127.0.0.1:$PORT`` (``PORT`` defaulting to 8080)."""
    env = os.environ if env is None else env
    return flag or written(EDGE_FILE) or f"http://127.0.0.1:{env.get('PORT') or 8080}"
