"""Where a running ``band up`` leaves its addresses for the other commands run beside it.

``band up`` writes ``./.band/nats.url`` (the nats-server it started) and
``./.band/edge.url`` (its edge), and removes both when it stops; ``band ls``, ``band sql``,
``band demo`` and the rest, run in the same directory, read them, so a second terminal
needs no setup. Paths are relative to the directory the command runs in. Which NATS a
command uses: ``--nats``, ``$NATS_URL``, ``./.band/nats.url``, ``nats://127.0.0.1:4222``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .connect import DEFAULT_URL

__all__ = ["DEFAULT_SOURCE", "EDGE_FILE", "STATE_DIR", "URL_FILE", "Target", "edge_url", "nats_target", "nats_url", "written"]

STATE_DIR = Path(".band")
URL_FILE = STATE_DIR / "nats.url"
EDGE_FILE = STATE_DIR / "edge.url"


def written(path: Path) -> str:
    """The URL ``band up`` wrote to ``path``, or ``""`` when there is none."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


DEFAULT_SOURCE = "the default"


@dataclass(frozen=True)
class Target:
    """A NATS URL (comma-separated for a cluster) and where it came from, for messages."""

    url: str
    source: str


def nats_target(flag: str | None = None, env: Mapping[str, str] | None = None) -> Target:
    """The NATS to use: ``flag``, else ``NATS_URL``, else ``./.band/nats.url``, else localhost."""
    env = os.environ if env is None else env
    if flag:
        return Target(flag, "--nats")
    if env.get("NATS_URL"):
        return Target(env["NATS_URL"], "NATS_URL")
    url = written(URL_FILE)
    if url:
        return Target(url, f"./{URL_FILE}, written by band up")
    return Target(DEFAULT_URL, DEFAULT_SOURCE)


def nats_url(flag: str | None = None) -> str:
    """The URL alone (see :func:`nats_target`)."""
    return nats_target(flag).url


def edge_url(flag: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The edge to send hits to: ``flag``, else ``./.band/edge.url``, else
    ``http://127.0.0.1:$PORT`` (``PORT`` defaulting to 8080)."""
    env = os.environ if env is None else env
    return flag or written(EDGE_FILE) or f"http://127.0.0.1:{env.get('PORT') or 8080}"
