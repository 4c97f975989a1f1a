"""The edge's NATS side: brought up in the background, kept, and torn down in reverse.

While it is up, it is one typed :class:`Running` (connection, JetStream, link, discovery,
pipeline); while it is not, there is none, and the routes that need it answer 503.
Startup does not wait for NATS: the port binds and ``/health`` answers 503 (a load
balancer sees the edge) until NATS is there; afterwards nats-py reconnects forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from band import wire
from band.runtime import close, connect, ensure_stream, retry

from .builtin_enrichers import Builtins
from .config import EdgeConfig
from .discovery import Discovery
from .link import Link
from .metrics import Metrics
from .pipeline import Pipeline
from .privacy import DailyKey, IpPolicy
from .stopping import Stopping
from .upload import Uploads
from .ws import Sockets

log = logging.getLogger("broker")

DRAIN_TIMEOUT_S = 30.0  # NATS drain when no stop bounds it (nats-py's own default)
CONNECT_RETRY_S = 1.0
STREAM_RETRY_S = 2.0


@dataclass(frozen=True, slots=True)
class Running:
    """Everything the edge holds while NATS is up."""

    nc: Client
    js: JetStreamContext
    link: Link
    discovery: Discovery
    pipeline: Pipeline
    builtins: Builtins
    pushes: Subscription  # ``band.ws.>``: server pushes for this edge's sockets


class EventsStream:
    """The events stream, (re)created in the background, once at a time, whenever it is
    found missing (at start, after a reconnect, when a publish had no stream to answer)."""

    def __init__(self, config: EdgeConfig) -> None:
        self._config = config
        self._js: JetStreamContext | None = None
        self.ready = False
        self.task: asyncio.Task[None] | None = None

    def missing(self) -> None:
        self.ready = False
        if self._js is not None and (self.task is None or self.task.done()):
            self.task = asyncio.ensure_future(self._keep(self._js))

    def start(self, js: JetStreamContext) -> asyncio.Task[None]:
        self._js = js
        self.missing()
        assert self.task is not None
        return self.task

    async def _keep(self, js: JetStreamContext) -> None:
        """Create the events stream; retry in the background while JetStream is away."""
        differs = await retry(lambda: ensure_stream(js, self._config.stream_limits()), STREAM_RETRY_S,
                              lambda exc: log.warning("events stream %s not ready: %r", wire.STREAM, exc))
        if differs:
            log.warning("events stream %s %s; the operator applies it with band provision", wire.STREAM, differs)
        self.ready = True


class NatsSide:
    """Brings :class:`Running` up and down for the app (its cleanup context)."""

    def __init__(
        self, config: EdgeConfig, metrics: Metrics, sockets: Sockets, uploads: Uploads, stopping: Stopping, on_up: Callable[[Running | None], None],
        ip_policy: IpPolicy | None = None,
    ) -> None:
        self._config = config
        self._ip_policy = ip_policy or IpPolicy(config.ip_policy, config.ip_policies, DailyKey(config.privacy_secret))
        self._metrics = metrics
        self._sockets = sockets
        self._uploads = uploads
        self._stopping = stopping
        self._on_up = on_up
        self.stream = EventsStream(config)
        self._nc: Client | None = None
        self._connect_failed = asyncio.Event()  # the first connect attempt failed: start serving 503s

    async def context(self, app: object) -> AsyncIterator[None]:
        """Up in the background: startup waits until it is up or the first connect attempt
        failed, so the port binds either way and a stop never waits for NATS."""
        parts = contextlib.AsyncExitStack()  # what is up so far, torn down in reverse
        tasks: list[asyncio.Task[None]] = []
        bring_up = asyncio.create_task(self._bring_up(parts, tasks))
        failed = asyncio.create_task(self._connect_failed.wait())
        try:
            await asyncio.wait([bring_up, failed], return_when=asyncio.FIRST_COMPLETED)
            if bring_up.done():
                bring_up.result()  # a startup error (not NATS being away) is raised here
            yield
        finally:
            failed.cancel()
            bring_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await bring_up
            if self.stream.task is not None:
                tasks.append(self.stream.task)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await parts.aclose()

    async def _connect(self) -> Client:
        """Connect, retrying until NATS answers; afterwards nats-py reconnects forever."""
        urls = list(self._config.nats_urls)
        return await retry(
            # band's connect: credentials out of the URLs (cluster failover), NATS_CA for TLS
            lambda: connect(urls, name=self._config.name, error_cb=self._nats_error,
                            disconnected_cb=self._nats_disconnected, reconnected_cb=self._nats_reconnected),
            CONNECT_RETRY_S, lambda exc: log.warning("NATS %s not reachable (%r); retrying", ",".join(urls), exc),
            errors=(OSError, nats.errors.Error),
        )

    async def _nats_error(self, exc: Exception) -> None:
        self._connect_failed.set()
        log.warning("NATS: %r", exc)

    async def _nats_disconnected(self) -> None:
        nc = self._nc
        if nc is None or nc.is_closed or nc.is_draining:
            return
        log.warning("NATS disconnected; hits answer 503 until it is back")

    async def _nats_reconnected(self) -> None:
        log.info("NATS reconnected")
        self.stream.missing()
        self._uploads.reset()

    async def _bring_up(self, parts: contextlib.AsyncExitStack, tasks: list[asyncio.Task[None]]) -> None:
        """Connect (retrying until NATS answers), then the stream, link, pipeline, push, discovery."""
        config = self._config
        self._nc = nc = await self._connect()
        parts.push_async_callback(self._close, nc)
        js = nc.jetstream()
        discovery = Discovery(
            nc,
            interval_s=config.discovery_interval_s,
            window_s=config.discovery_window_s,
            keep_polls=config.discovery_keep_polls,
            default_timeout_ms=config.handler_timeout_ms,
        )
        builtins = Builtins(config, self._metrics, self._ip_policy)
        await builtins.start()
        parts.push_async_callback(builtins.stop)
        await asyncio.wait([self.stream.start(js)], timeout=config.publish_timeout_ms / 1000)
        link = Link(nc)
        await link.connect()
        parts.push_async_callback(link.close)
        pipeline = Pipeline(link, discovery, config, self._metrics, self.stream.missing, builtins, self._ip_policy)
        pushes = await nc.subscribe(f"{wire.WS_PREFIX}.>", cb=self._sockets.on_push)
        parts.push_async_callback(self._unsubscribe, pushes)
        first_poll = asyncio.Event()
        tasks.append(asyncio.create_task(discovery.run(first_poll)))
        await first_poll.wait()
        self._on_up(Running(nc, js, link, discovery, pipeline, builtins, pushes))
        log.info("band edge ready: NATS connected")

    async def _unsubscribe(self, sub: Subscription) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _close(self, nc: Client) -> None:
        if nc.is_closed:
            return
        if not nc.is_connected:  # reconnecting (or never connected): nothing to drain
            await close(nc)  # what it still buffers has nowhere to go; that is logged, not raised
            return
        try:
            async with asyncio.timeout(self._stopping.left(DRAIN_TIMEOUT_S)):  # what the stop has left
                await nc.drain()
        except (TimeoutError, nats.errors.Error):
            await close(nc)


__all__ = ["EventsStream", "NatsSide", "Running"]
