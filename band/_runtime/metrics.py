"""Prometheus metrics of one service, served on ``/metrics`` by ``band run`` when ``METRICS_PORT`` is set.

Per endpoint (role, method): requests, errors by code, latency; requests in flight;
per durable listener: consumer lag (read from JetStream at scrape time), redeliveries
and dead letters; and the process's own CPU, memory and file descriptors.

The service calls in only when metrics are on (``service.metrics`` is not ``None``), so
a service without ``METRICS_PORT`` pays one attribute check per request. Each
(role, method) resolves its labelled children once. The counters are handed what they
read (a name, the in-flight count, the durable consumers and how to ask JetStream about
them), never the service itself: the runtime calls into metrics, not the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .. import wire
from .._core.log import Logger
from ..errors import ConfigError

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_TIMEOUT_S = 0.5  # a scrape never waits longer than this for JetStream


class ServiceMetrics:
    """The counters of one running service, in a registry of their own."""

    def __init__(self, name: str, *, inflight: Callable[[], int], durable_methods: Iterable[str] = (),
                 consumer_info: Callable[[str], Awaitable[Any]] | None = None, collectors: Iterable[Any] = ()) -> None:
        """``inflight()`` counts requests running now; ``consumer_info(consumer)`` asks JetStream
        about one of the ``durable_methods``' consumers (its lag, read at scrape time)."""
        self.name = name
        self._durable = [wire.durable_name(name, method) for method in durable_methods]
        self._consumer_info = consumer_info
        self.registry = r = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        for collector in collectors:  # the service's own (the store's band_store_*)
            r.register(collector)
        endpoint = ["service", "role", "method"]
        self.requests = Counter("band_service_requests", "Requests handled, by endpoint", endpoint, registry=r)
        self.errors = Counter("band_service_errors", "Failed requests, by endpoint and code", [*endpoint, "code"], registry=r)
        self.latency = Histogram("band_service_latency_seconds", "Time to handle one request", endpoint, buckets=BUCKETS, registry=r)
        running = Gauge("band_service_inflight", "Requests being handled now", ["service"], registry=r)
        running.labels(self.name).set_function(inflight)
        durable = ["service", "consumer"]
        self.lag = Gauge("band_durable_lag", "Events the durable listener has not been handed yet", durable, registry=r)
        self.redeliveries = Counter("band_durable_redeliveries", "Events delivered again after a failure or timeout", durable, registry=r)
        self.dead_letters = Counter("band_dlq", "Events moved to the dead-letter subject", durable, registry=r)
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe(self, role: str, method: str, started_ns: int, code: int) -> None:
        """One request of ``role``/``method`` finished; ``code`` 0 when it succeeded."""
        children = self._children.get((role, method))
        if children is None:
            children = self._children[(role, method)] = (
                self.requests.labels(self.name, role, method),
                self.latency.labels(self.name, role, method),
            )
        children[0].inc()
        children[1].observe((time.perf_counter_ns() - started_ns) / 1e9)
        if code:
            self.errors.labels(self.name, role, method, str(code)).inc()

    def delivered(self, method: str, attempt: int) -> None:
        """A durable listener got an event, for the ``attempt``-th time."""
        if attempt > 1:
            self.redeliveries.labels(self.name, wire.durable_name(self.name, method)).inc()

    def dead_lettered(self, method: str) -> None:
        self.dead_letters.labels(self.name, wire.durable_name(self.name, method)).inc()

    async def refresh(self) -> None:
        """Read each durable consumer's lag from JetStream (bounded wait; skipped on trouble)."""
        if self._consumer_info is None:
            return
        for consumer in self._durable:
            try:
                info = await asyncio.wait_for(self._consumer_info(consumer), LAG_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - NATS away: the last value stands
                continue
            self.lag.labels(self.name, consumer).set(info.num_pending or 0)

    async def render(self, _request: web.Request) -> web.Response:
        await self.refresh()
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def port_from(env: Mapping[str, str] | None = None) -> int | None:
    """``METRICS_PORT`` as a port number, ``None`` when unset."""
    env = os.environ if env is None else env
    raw = (env.get("METRICS_PORT") or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"METRICS_PORT must be a port number (1-65535), got {raw!r}")
    return int(raw)


def metrics_env(index: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``band up``'s ``index``-th service serves /metrics on ``METRICS_PORT + index`` (one port each)."""
    env = os.environ if env is None else env
    raw = (env.get("METRICS_PORT") or "").strip()
    return {"METRICS_PORT": str(int(raw) + index)} if raw.isdigit() else {}


@contextlib.asynccontextmanager
async def exposed(metrics: ServiceMetrics, logger: Logger, port: int, host: str | None = None) -> AsyncIterator[ServiceMetrics]:
    """Serve ``metrics`` on ``/metrics`` at ``port`` while the block runs.

    Raises:
        ConfigError: the port cannot be bound (naming it and what to do).
    """
    app = web.Application()
    app.router.add_get("/metrics", metrics.render)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host or os.environ.get("METRICS_HOST") or "0.0.0.0", port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot serve /metrics on port {port} ({exc.strerror}); set METRICS_PORT to a free port") from None
    logger.info("metrics on /metrics", port=port)
    try:
        yield metrics
    finally:
        await asyncio.shield(runner.cleanup())


__all__ = ["ServiceMetrics", "exposed", "metrics_env", "port_from"]
