"""Run an :class:`~band._core.app.App` on a NATS connection: start and stop, nothing else.

start: subscribe every endpoint (queue group = service name), create the durable
consumers, answer discovery, then start workers and consumers in one task group; a
start that fails undoes what it did. stop: leave discovery, drain subscriptions (no
new requests), let in-flight calls finish (bounded), cancel the task group, run
cleanups with their deadlines. The connection is handed in and never owned, so
several services can share one process (style.md).

What a message does lives in :mod:`.dispatch`, how many run and how long in
:mod:`.limits`, durable consumers in :mod:`.durable`, discovery in :mod:`.micro`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .. import tracing, wire
from .._core.app import App, reset_current, set_current
from .._core.registry import Endpoint
from ..errors import CleanupFailed
from .connect import flush
from .dispatch import Dispatch, quiet
from .durable import FETCH_WAIT_S, DurableListener, durable_listeners
from .limits import Gate
from .micro import EndpointStats, ServiceIdentity, serve_discovery
from .options import ServiceOptions

if TYPE_CHECKING:
    from .metrics import ServiceMetrics

Callback = Callable[[Msg], Coroutine[Any, Any, None]]


class Service:
    """One running instance of an app; use as ``async with Service(app, nc):``."""

    def __init__(self, app: App, nc: Client, options: ServiceOptions | None = None) -> None:
        self.app = app
        self.nc = nc
        self.options = options or ServiceOptions.from_app(app)
        self.identity = ServiceIdentity(
            name=app.name,
            version=str(app.settings.get("version") or "0.1.0"),
            description=str(app.settings.get("description") or ""),
        )
        self._stats: dict[tuple[str, str], EndpointStats] = {}
        self.gate = Gate(self.options.max_inflight)
        self.dispatch = Dispatch(app, nc, self.options.call_timeout_s, self._stats)
        self._subs: list[Subscription] = []
        self._discovery: list[Subscription] = []
        self._durables: list[DurableListener] = []
        self._stopping = asyncio.Event()
        self._crew: asyncio.Task[None] | None = None  # workers and consumers, one task group
        self._consumers: list[asyncio.Task[None]] = []
        self._started = False
        self._stopped = False

    @property
    def metrics(self) -> ServiceMetrics | None:
        """Set while /metrics is served (band/_runtime/metrics.py); the calls report to it."""
        return self.dispatch.metrics

    @metrics.setter
    def metrics(self, metrics: ServiceMetrics | None) -> None:
        self.dispatch.metrics = metrics

    # --- lifecycle ---------------------------------------------------------------
    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Subscribe everything, then announce; ready means reachable and discoverable.

        If any step fails, what was done is undone (subscriptions, tasks, ``app.nc``)
        and the error raised: a failed start leaves nothing on the shared connection.
        """
        if self._started:
            raise RuntimeError("service already started")
        self._started = True
        self.app.nc = self.nc
        token = set_current(self.app)  # tasks created below inherit the app as current
        try:
            await self._subscribe_endpoints()
            self._durables = await durable_listeners(self.app, self.nc, self.dispatch, self.gate)
            self._discovery = await serve_discovery(self.nc, self.identity)
            await flush(self.nc)
            await self._start_crew()
        except BaseException:
            await self._undo()
            raise
        finally:
            reset_current(token)
        self.app.logger.info("service started", endpoints=len(self.identity.endpoints), instance=self.identity.id)

    async def _undo(self) -> None:
        """Take back a start that failed half-way."""
        self._stopped = True
        self._stopping.set()
        for sub in self._subs + self._discovery:
            await quiet(sub.unsubscribe())
        if self._crew is not None:
            self._crew.cancel()
            await asyncio.wait([self._crew], timeout=1.0)
        self.app.nc = None

    async def stop(self) -> None:
        """Drain, finish in-flight work (bounded), cancel workers, run cleanups. Idempotent."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        for sub in self._discovery:  # leave discovery first: the edge stops routing here
            await quiet(sub.unsubscribe())
        await self._drain()
        if self._crew is not None:  # shutdown is cancellation: workers end with the group
            self._crew.cancel()
            await asyncio.wait([self._crew])
        await self.app.scheduler.close()
        failed = await self._run_cleanups()
        await quiet(self.app.redis_factory.close())
        if self.nc.is_connected:
            await quiet(self.nc.flush(timeout=1))
        self.app.nc = None
        self.app.logger.info("service stopped")
        if failed:  # every cleanup ran and the stop finished: now the caller hears of it
            raise CleanupFailed(f"{len(failed)} cleanup(s) failed: " + ", ".join(
                f"{getattr(fn, '__name__', fn)} ({type(exc).__name__})" for fn, exc in failed), [exc for _, exc in failed])

    async def _drain(self) -> None:
        """Stop taking requests and let the in-flight ones finish, within ``drain_timeout``.

        A subscription's drain returns once the messages NATS already handed us were
        scheduled, which may wait for room in the gate; durable consumers finish their
        current pull (at most ``FETCH_WAIT_S``). Whatever still runs at the deadline is
        cancelled. Without a connection there is nothing to drain from: subscriptions
        are dropped and only the calls already running are waited for.
        """
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.drain_timeout_s
        if self.nc.is_connected:
            drains = [asyncio.ensure_future(quiet(sub.drain())) for sub in self._subs]  # type: ignore[no-untyped-call]
        else:
            drains = [asyncio.ensure_future(quiet(sub.unsubscribe())) for sub in self._subs]
        pending = drains + self._consumers
        if pending:
            await asyncio.wait(pending, timeout=FETCH_WAIT_S + self.options.drain_timeout_s)
        late = await self.gate.join(max(0.0, deadline - loop.time()))
        if late:
            self.app.logger.warning("in-flight requests cancelled at stop", count=late)
        for task in [t for t in pending if not t.done()]:
            task.cancel()

    async def _run_cleanups(self) -> list[tuple[Any, Exception]]:
        """``@cleanup()`` functions in reverse order, each cancelled at its deadline; every
        one runs whatever the others did, and the failures are returned, not only logged."""
        failed: list[tuple[Any, Exception]] = []
        for fn, timeout in reversed(self.app.registry.cleanups):
            try:
                async with asyncio.timeout(timeout):
                    await fn()
            except TimeoutError as exc:
                self.app.logger.warning("cleanup cancelled at its deadline", cleanup=fn.__name__, timeout=timeout)
                failed.append((fn, exc))
            except Exception as exc:
                self.app.logger.exception("cleanup failed", cleanup=fn.__name__)
                failed.append((fn, exc))
        return failed

    # --- workers and consumers: one task group -------------------------------------
    async def _start_crew(self) -> None:
        """Start the group; returns once it runs (readiness is a handshake)."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._crew = asyncio.get_running_loop().create_task(self._run_crew(ready))
        await asyncio.wait([ready, self._crew], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            self._crew.result()  # raises what stopped it
            raise RuntimeError("the service's task group ended before it started")

    async def _run_crew(self, ready: asyncio.Future[None]) -> None:
        async with asyncio.TaskGroup() as group:
            for fn in self.app.registry.workers:
                group.create_task(self._run_worker(fn))
            self._consumers = [group.create_task(d.run(self._stopping)) for d in self._durables]
            ready.set_result(None)

    async def _run_worker(self, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.app.logger.exception("worker failed", worker=fn.__name__)

    # --- subscriptions -----------------------------------------------------------
    def _endpoint(self, ep: Endpoint, subject: str, metadata: dict[str, str]) -> None:
        """List one (function, subject) in INFO; stats count per function and role."""
        role = metadata[wire.MD_ROLE]
        name = f"{role}-{ep.method}"
        taken = sum(1 for s in self.identity.endpoints if s.name == name or s.name.startswith(name + "-"))
        stats = EndpointStats(name if not taken else f"{name}-{taken}", subject, wire.queue_group(self.app.name), metadata)
        self.identity.endpoints.append(stats)
        self._stats.setdefault((role, ep.method), stats)

    async def _subscribe(self, subject: str, handler: Callback) -> None:
        """The NATS callback only schedules: each message runs in its own slot of the gate."""
        spawn = self.gate.spawn

        async def schedule(msg: Msg) -> None:
            await spawn(tracing.serving(msg, handler(msg)) if tracing.ON else handler(msg))

        self._subs.append(await self.nc.subscribe(subject, queue=wire.queue_group(self.app.name), cb=schedule))

    async def _subscribe_endpoints(self) -> None:
        name, registry, dispatch = self.app.name, self.app.registry, self.dispatch
        subjects: dict[str, Callback] = {}
        for ep in registry.by_role("handler"):
            key = ep.handler_key(name)
            md = wire.endpoint_metadata(
                wire.ROLE_HANDLER, key=key, alias=ep.alias, path=ep.path, timeout=ep.timeout_ms, method=ep.method
            )
            subject = wire.handle_subject(key)
            self._endpoint(ep, subject, md)
            subjects[subject] = dispatch.on_handle
        for method, ep in registry.rpc_methods().items():
            subject = wire.rpc_subject(name, method)
            self._endpoint(ep, subject, wire.endpoint_metadata(wire.ROLE_RPC, method=method))
            subjects[subject] = dispatch.on_rpc
        for ep in registry.by_role("enricher"):
            md = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=list(ep.keys), props=dict(ep.props), method=ep.method, bots=ep.bots)
            for prefix in ep.keys or ("",):
                subject = wire.prefix_subject(wire.ENRICH_PREFIX, prefix)
                self._endpoint(ep, subject, md)
                subjects[subject] = dispatch.on_enrich
        for ep in registry.by_role("listener"):
            md = wire.endpoint_metadata(wire.ROLE_LISTENER, keys=list(ep.keys), durable=ep.durable, method=ep.method)
            for prefix in ep.keys or ("",):
                subject = wire.prefix_subject("", prefix)
                self._endpoint(ep, subject, md)
                if not ep.durable:
                    subjects[subject] = dispatch.on_event
        for subject, handler in subjects.items():
            await self._subscribe(subject, handler)


__all__ = ["Service", "ServiceOptions"]
