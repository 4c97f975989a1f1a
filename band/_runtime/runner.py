"""``band run PATH``: one service, from start to a clean exit on SIGTERM/SIGINT.

Order: configure logs → load settings → import the service → connect (retrying
until NATS answers; a signal stops it) → serve → on a signal: drain, finish in-flight
work, cancel workers, run cleanups (a second signal cuts that short) → close the
connection → exit 0.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from .. import tracing, wire
from .._core import log
from .._core.app import App
from .._core.loader import load_service
from ..errors import CleanupFailed, ConfigError
from . import loop
from .connect import close, connect
from .metrics import ServiceMetrics, exposed, port_from
from .options import ServiceOptions
from .service import Service
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
        async with running(app, url) as service, measured(service):  # /metrics when METRICS_PORT is set
            with signals.graceful():
                await signals.requested.wait()
            app.logger.info("stopping")


@asynccontextmanager
async def measured(service: Service, port: int | None = None) -> AsyncIterator[ServiceMetrics | None]:
    """Count ``service``'s work and serve it on ``/metrics`` while the block runs; without
    ``port`` (and no ``METRICS_PORT``) nothing is counted or served."""
    port = port if port is not None else port_from()
    if port is None:
        yield None
        return
    app = service.app
    metrics = ServiceMetrics(
        app.name, inflight=lambda: service.gate.running, collectors=app.collectors,
        durable_methods=[ep.method for ep in app.registry.by_role("listener") if ep.durable],
        consumer_info=lambda consumer: service.nc.jetstream().consumer_info(wire.STREAM, consumer),
    )
    async with exposed(metrics, app.logger, port):
        service.metrics = metrics
        try:
            yield metrics
        finally:
            service.metrics = None


def run(path: str | Path, url: str | None = None, name: str | None = None) -> int:
    """Entry point of ``band run``; returns the process exit code."""
    log.configure()
    try:
        app = load_service(path, name)
        port_from()  # a bad METRICS_PORT is refused before connecting
        ServiceOptions.from_app(app)  # and a bad BAND_* or max_inflight/drain_timeout/call_timeout
    except ConfigError as exc:
        print(f"band run: {exc}", file=sys.stderr)
        return 2
    tracing.setup(app.name)  # only when OTEL_* asks for it
    try:
        loop.run(serve_until_stopped(app, url))  # uvloop when installed
    except ConfigError as exc:
        print(f"band run: {exc}", file=sys.stderr)
        return 2
    except CleanupFailed as exc:  # the stop itself finished; each traceback is in the log above
        print(f"band run: stopped, but {exc.message}; their tracebacks are logged above", file=sys.stderr)
    finally:
        tracing.shutdown()  # flush the spans still queued
    return 0
