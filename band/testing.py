"""Helpers for testing services against a real nats-server.

``async with serve(app, url):`` runs a service until the block ends; ready means
subscribed and answering discovery, so a test can call it right away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ._core.app import App
from ._core.loader import load_service
from ._runtime.runner import running
from ._runtime.service import Service, ServiceOptions


@asynccontextmanager
async def serve(app: App | str | Path, nats_url: str, options: ServiceOptions | None = None) -> AsyncIterator[Service]:
    """Run ``app`` (an App, or a path ``band run`` would take) on its own connection."""
    async with running(app if isinstance(app, App) else load_service(app), nats_url, options) as service:
        yield service


__all__ = [
    "serve",
]
