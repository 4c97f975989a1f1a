"""The panel as one more process of ``band up``, with band up's control socket beside it.

``band up`` calls :func:`panel_beside` once its children run: it serves the control
socket, starts the panel (one more child, stopped with the others) and yields the line
to print among the stack's URLs. Without ``PANEL_TOKEN`` it makes one, so the link it
prints logs in and nothing else does.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from .control import serving, start_child


@asynccontextmanager
async def panel_beside(
    children: list[Any], width: int, data: Path, env: dict[str, str], edge_port: int, panel_port: int,
    make_child: Callable[[str, list[str], dict[str, str]], Any],
) -> AsyncIterator[str]:
    """Serve control of ``children`` and run the panel among them (appended to ``children``)."""
    chosen = os.environ.get("PANEL_TOKEN")
    token = chosen or secrets.token_urlsafe(24)
    socket = (data / "control.sock").absolute()
    panel_env = {**env, "PANEL_TOKEN": token, "PANEL_EDGE_URLS": f"http://127.0.0.1:{edge_port}", "BAND_CONTROL_SOCKET": str(socket)}
    panel = make_child("panel", [sys.executable, "-m", "band", "panel", "--port", str(panel_port)], panel_env)
    async with serving([*children, panel], width, socket):
        await start_child(panel, width)
        children.append(panel)
        yield f"http://127.0.0.1:{panel_port}/login" + ("" if chosen else f"?token={token}")


__all__ = ["panel_beside"]
