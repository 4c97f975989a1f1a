"""``band run PATH``: one service, from start to a clean exit on SIGTERM/SIGINT.

Order: configure logs → load settings → import the service → connect (retrying
until NATS answers; a signal stops it) → serve → on a signal: drain, finish in-flight
work, cancel workers, run cleanups (a second signal cuts that short) → close the
connection → exit 0.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from .. import tracing
from .._core import log
from .._core.app import App
from . import loop
from .connect import close, connect
from ..errors import ConfigError
from .._core.loader import load_service
from ..metrics import exposed, port_from
from .service import Service, ServiceOptions
from .signals import Signals


@asynccontextmanager
async def running(app: App, url: str | list[str] | None = None, options: ServiceOptions | None = None) -> AsyncIterator[Service]:
    """``app`` served on a connection of its own, until the block ends; then the connection closes."""
    nc = await connect(url, name=app.name, logger=app.logger)
    try:
        async with Service(app, nc, options) as service:
            yield service
    finally:
        await close(nc, app.logger)  # a dead connection's close is logged, never raised


async def serve_until_stopped(app: App, url: str | None = None, stop: asyncio.Event | None = None) -> None:
    """Run ``app`` until ``stop`` is set or SIGTERM/SIGINT (see :mod:`.signals`: a signal
    while connecting cancels the connect; while serving it starts a graceful stop)."""
    async with Signals(stop) as signals:
        async with running(app, url) as service, exposed(service):  # /metrics when METRICS_PORT is set
            with signals.graceful():
                await signals.requested.wait()
            app.logger.info("stopping")


def run(path: str | Path, url: str | None = None, name: str | None = None) -> int:
    """Entry point of ``band run``; returns the process exit code."""
    log.configure()
    try:
        app = load_service(path, name)
        port_from()  # a bad METRICS_PORT is refused before connecting
    except ConfigError as exc:
        print(f"band run: {exc}", file=sys.stderr)
        return 2
    tracing.setup(app.name)  # only when OTEL_* asks for it
    try:
        loop.run(serve_until_stopped(app, url))  # uvloop when installed
    except ConfigError as exc:
        print(f"band run: {exc}", file=sys.stderr)
        return 2
    finally:
        tracing.shutdown()  # flush the spans still queued
    return 0
