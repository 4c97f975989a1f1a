"""Run an :class:`~band._core.app.App` on a NATS connection: the service lifecycle.

start: subscribe every endpoint (queue group = service name), start durable
consumers, answer discovery, start workers. stop: leave discovery, drain
subscriptions (no new requests), let in-flight requests finish (bounded), cancel
workers and spawned tasks, run cleanups with their deadlines. The connection is
handed in and never owned, so several services can share one process (style.md).

The NATS callback only schedules: each request runs in its own task behind a
per-service bound on in-flight work, so a slow handler never stalls the others.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, Mapping

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError

from .. import wire
from .._core.app import App, reset_current, set_current
from .connect import flush
from .timers import Cutter
from ..errors import ConfigError, RPCError
from .micro import EndpointStats, ServiceIdentity, serve_discovery
from .._core.registry import Endpoint
from ..response import ErrorResponse, Response, to_wire
from .stream import StreamLimits, ensure_stream

DEFAULT_MAX_INFLIGHT = 256
DEFAULT_DRAIN_TIMEOUT_S = 10.0
DEFAULT_CALL_TIMEOUT_S = 60.0  # a hung call is cut here, so it cannot hold a slot forever
FETCH_WAIT_S = 0.5  # how long one pull of a durable listener waits for events


@dataclass(frozen=True)
class ServiceOptions:
    """Runtime knobs; from settings (``max_inflight``, ``drain_timeout``) or env."""

    max_inflight: int = DEFAULT_MAX_INFLIGHT
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S  # RPC methods, enrichers, listeners

    @classmethod
    def from_app(cls, app: App) -> "ServiceOptions":
        env = os.environ
        return cls(
            max_inflight=int(app.settings.get("max_inflight") or env.get("BAND_MAX_INFLIGHT") or DEFAULT_MAX_INFLIGHT),
            drain_timeout_s=float(
                app.settings.get("drain_timeout") or env.get("BAND_DRAIN_TIMEOUT") or DEFAULT_DRAIN_TIMEOUT_S
            ),
            call_timeout_s=float(
                app.settings.get("call_timeout") or env.get("BAND_CALL_TIMEOUT") or DEFAULT_CALL_TIMEOUT_S
            ),
        )


class _Overrun(Exception):
    """A call ran past its time limit and was cancelled: a 504."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"did not finish within {limit:g}s and was cancelled")
        self.limit = limit


class _Reject(Exception):
    """A request refused before the function ran (bad body, missing params): a 4xx."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        self._subs: list[Subscription] = []
        self._discovery: list[Subscription] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        self._cutter = Cutter()
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()  # set while fewer than max_inflight requests run
        self._room.set()
        self._workers: list[asyncio.Task[Any]] = []
        self._consumers: list[asyncio.Task[Any]] = []
        self._started = False
        self._stopped = False
        self._rpc = app.registry.rpc_methods()

    # --- lifecycle ---------------------------------------------------------------
    async def __aenter__(self) -> "Service":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Subscribe everything, then announce; ready means reachable and discoverable."""
        if self._started:
            raise RuntimeError("service already started")
        self._started = True
        self.app.nc = self.nc
        token = set_current(self.app)  # tasks created below inherit the app as current
        try:
            await self._subscribe_endpoints()
            await self._start_durable_listeners()
            self._discovery = await serve_discovery(self.nc, self.identity)
            await flush(self.nc)
            for fn in self.app.registry.workers:
                self._workers.append(asyncio.get_running_loop().create_task(self._run_worker(fn)))
        finally:
            reset_current(token)
        self.app.logger.info(
            "service started", endpoints=len(self.identity.endpoints), instance=self.identity.id
        )

    async def stop(self) -> None:
        """Drain, finish in-flight work (bounded), cancel workers, run cleanups. Idempotent."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        for sub in self._discovery:  # leave discovery first: the edge stops routing here
            await _quiet(sub.unsubscribe())
        await self._drain()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self.app.scheduler.close()
        await self._run_cleanups()
        await _quiet(self.app.redis_factory.close())
        await _quiet(self.nc.flush(timeout=1))
        self.app.nc = None
        self.app.logger.info("service stopped")

    async def _drain(self) -> None:
        """Stop taking requests and let the in-flight ones finish, within ``drain_timeout``.

        A subscription's drain returns once the messages NATS already handed us were
        scheduled, which may wait for room among the in-flight ones; durable consumers
        finish their current pull (at most ``FETCH_WAIT_S``). Whatever still runs at the
        deadline is cancelled.
        """
        self._stopping.set()
        drains = [asyncio.ensure_future(_quiet(sub.drain())) for sub in self._subs]  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.drain_timeout_s
        if drains or self._consumers:
            await asyncio.wait(drains + self._consumers, timeout=FETCH_WAIT_S + self.options.drain_timeout_s)
        while self._inflight and loop.time() < deadline:
            await asyncio.wait(set(self._inflight), timeout=deadline - loop.time())
        if self._inflight:
            self.app.logger.warning("in-flight requests cancelled at stop", count=len(self._inflight))
            for task in list(self._inflight):
                task.cancel()
            await asyncio.wait(set(self._inflight), timeout=1.0)
        for task in [t for t in drains + self._consumers if not t.done()]:
            task.cancel()

    async def _run_cleanups(self) -> None:
        """``@cleanup()`` functions in reverse order, each cancelled at its deadline."""
        for fn, timeout in reversed(self.app.registry.cleanups):
            try:
                await asyncio.wait_for(fn(), timeout)
            except asyncio.TimeoutError:
                self.app.logger.warning("cleanup cancelled at its deadline", cleanup=fn.__name__, timeout=timeout)
            except Exception:
                self.app.logger.exception("cleanup failed", cleanup=fn.__name__)

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

    async def _subscribe(self, subject: str, handler: Callable[[Msg], Coroutine[Any, Any, None]]) -> None:
        async def schedule(msg: Msg) -> None:
            await self._spawn(handler(msg))

        self._subs.append(await self.nc.subscribe(subject, queue=wire.queue_group(self.app.name), cb=schedule))

    async def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in its own task; wait first while ``max_inflight`` tasks run.

        Waiting here holds back this subscription's delivery: backpressure reaches
        NATS (pending limits) instead of growing memory without bound.
        """
        while not self._room.is_set():
            await self._room.wait()
        task = _start_task(work)
        self._inflight.add(task)
        if len(self._inflight) >= self.options.max_inflight:
            self._room.clear()
        task.add_done_callback(self._release)
        return task

    def _release(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        if len(self._inflight) < self.options.max_inflight:
            self._room.set()

    async def _subscribe_endpoints(self) -> None:
        name, registry = self.app.name, self.app.registry
        subjects: dict[str, Callable[[Msg], Coroutine[Any, Any, None]]] = {}
        for ep in registry.by_role("handler"):
            key = ep.handler_key(name)
            md = wire.endpoint_metadata(
                wire.ROLE_HANDLER, key=key, alias=ep.alias, path=ep.path, timeout=ep.timeout_ms, method=ep.method
            )
            subject = wire.handle_subject(key)
            self._endpoint(ep, subject, md)
            subjects[subject] = self._on_handle
        for method, ep in registry.rpc_methods().items():
            subject = wire.rpc_subject(name, method)
            self._endpoint(ep, subject, wire.endpoint_metadata(wire.ROLE_RPC, method=method))
            subjects[subject] = self._on_rpc
        for ep in registry.by_role("enricher"):
            md = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=list(ep.keys), props=dict(ep.props), method=ep.method)
            for prefix in ep.keys or ("",):
                subject = wire.prefix_subject(wire.ENRICH_PREFIX, prefix)
                self._endpoint(ep, subject, md)
                subjects[subject] = self._on_enrich
        for ep in registry.by_role("listener"):
            md = wire.endpoint_metadata(wire.ROLE_LISTENER, keys=list(ep.keys), durable=ep.durable, method=ep.method)
            for prefix in ep.keys or ("",):
                subject = wire.prefix_subject("", prefix)
                self._endpoint(ep, subject, md)
                if not ep.durable:
                    subjects[subject] = self._on_event
        for subject, handler in subjects.items():
            await self._subscribe(subject, handler)

    # --- request handling ----------------------------------------------------------
    def _stats_for(self, role: str, ep: Endpoint) -> EndpointStats | None:
        return self._stats.get((role, ep.method))

    async def _reply_error(self, msg: Msg, code: int, description: str, extra: Mapping[str, str] | None = None) -> None:
        if msg.reply:
            headers = {**wire.error_headers(code, description), **(extra or {})}
            body = wire.encode({"message": headers[wire.ERROR_HEADER], "code": code})
            await _quiet(self.nc.publish(msg.reply, body, headers=headers))

    async def _call(self, ep: Endpoint, params: Mapping[str, Any]) -> Any:
        missing = ep.missing(params)
        if missing:
            raise _Reject(400, f"{ep.method}() is missing argument(s): {', '.join(missing)}")
        return await ep.call(params)

    async def _answer(self, msg: Msg, ep: Endpoint | None, params: Mapping[str, Any] | None, role: str) -> None:
        """Run a handler or RPC method and reply with its typed response or an error."""
        started = time.perf_counter_ns()
        stats = self._stats_for(role, ep) if ep is not None else None
        error: str | None = None
        try:
            if ep is None or params is None:
                raise _Reject(404, f"nothing serves {msg.subject}")
            limit = ep.timeout_ms / 1000 if role == wire.ROLE_HANDLER else self.options.call_timeout_s
            result = await self._within(limit, self._call(ep, params))
            body = wire.encode(to_wire(result))
            if msg.reply:
                await self.nc.publish(msg.reply, body)
        except _Reject as exc:
            error = str(exc)
            await self._reply_error(msg, exc.code, error)
        except _Overrun as exc:
            error = str(exc)
            self.app.logger.warning("call cancelled at its time limit", subject=msg.subject, limit=exc.limit)
            await self._reply_error(msg, 504, error)
        except RPCError as exc:  # a deliberate refusal, or a failed call to another service
            error = f"{exc.code}: {exc.message}"
            self.app.logger.warning("request refused", subject=msg.subject, code=exc.code, message=exc.message)
            await self._reply_error(msg, exc.code, exc.message)
        except Exception as exc:
            error = _describe(exc)
            self.app.logger.exception(
                "request failed", subject=msg.subject, method=ep.method if ep else None, id=(params or {}).get("id")
            )
            await self._reply_error(msg, 500, str(exc) or type(exc).__name__)
        finally:
            if stats is not None:
                stats.record(started, error)

    async def _within(self, limit: float, call: Awaitable[Any]) -> Any:
        """Await ``call``; past ``limit`` seconds it is cancelled and :class:`_Overrun` raised."""
        task = asyncio.current_task()
        assert task is not None
        slot = self._cutter.watch(task, limit)
        try:
            return await call
        except asyncio.CancelledError:
            if not self._cutter.expired(task):
                raise  # a stop, not our limit
            task.uncancel()
            raise _Overrun(limit) from None
        finally:
            self._cutter.release(task, slot)

    def _decode(self, msg: Msg) -> dict[str, Any] | None:
        try:
            return wire.decode_object(msg.data)
        except wire.DecodeError:
            return None

    async def _on_handle(self, msg: Msg) -> None:
        key = msg.subject[len(wire.HANDLE_PREFIX) + 1 :]
        params = self._decode(msg)
        if params is None:
            return await self._reply_error(msg, 400, "request body must be a JSON object (the message)")
        path_params = params.get(wire.PARAMS_FIELD)
        if isinstance(path_params, dict):  # /x/:id → id=..., over the message's own id
            params = {**params, **path_params}
        return await self._answer(msg, self.app.registry.find_handler(self.app.name, key), params, wire.ROLE_HANDLER)

    async def _on_rpc(self, msg: Msg) -> None:
        method = msg.subject.rsplit(".", 1)[-1]
        params = self._decode(msg)
        if params is None:
            return await self._reply_error(msg, 400, "request body must be a JSON object of parameters")
        return await self._answer(msg, self._rpc.get(method), params, wire.ROLE_RPC)

    async def _on_enrich(self, msg: Msg) -> None:
        """Call every matching enricher; reply once with what they add (or null)."""
        service = {wire.SERVICE_HEADER: self.app.name}
        message = self._decode(msg)
        if message is None or not isinstance(message.get("key"), str):
            return await self._reply_error(msg, 400, "request body must be the message (a JSON object with 'key')", service)
        key = message["key"]
        merged: Any = None
        failed: str | None = None
        for ep in self.app.registry.by_role("enricher"):
            if ep.keys and not any(wire.key_matches(p, key) for p in ep.keys):
                continue
            args = {arg: wire.get_path(message, path) for arg, path in ep.props.items()}
            args["key"] = key
            result, error = await self._invoke(wire.ROLE_ENRICHER, ep, args, key, message.get("id"))
            if isinstance(result, ErrorResponse):
                error = f"enricher answered error {result.statusCode}: {result.message}"
                self.app.logger.warning("enricher returned an error", method=ep.method, key=key, message=result.message)
            elif result is not None:
                value = result.data if isinstance(result, Response) else result
                merged = {**merged, **value} if isinstance(merged, dict) and isinstance(value, dict) else value
            failed = failed or error
        if merged is None and failed is not None:
            return await self._reply_error(msg, 500, failed, service)
        if msg.reply:
            await self.nc.publish(msg.reply, wire.encode(merged), headers=service)

    async def _on_event(self, msg: Msg) -> None:
        """Non-durable listeners: every matching one gets the final message."""
        message = self._decode(msg)
        if message is None:
            self.app.logger.warning("event is not a JSON object; skipped", subject=msg.subject)
            return
        for ep in self.app.registry.by_role("listener"):
            if ep.durable or (ep.keys and not any(wire.key_matches(p, msg.subject) for p in ep.keys)):
                continue
            await self._listen(ep, msg.subject, message)

    async def _listen(self, ep: Endpoint, subject: str, message: Mapping[str, Any], **extra: Any) -> str | None:
        _, error = await self._invoke(wire.ROLE_LISTENER, ep, {**message, **extra}, subject, message.get("id"))
        return error

    async def _invoke(
        self, role: str, ep: Endpoint, params: Mapping[str, Any], key: str, msg_id: Any
    ) -> tuple[Any, str | None]:
        """Call an enricher or listener: count it, log a failure, never raise."""
        started = time.perf_counter_ns()
        result: Any = None
        error: str | None = None
        limit = ep.ack_wait_s if ep.durable else self.options.call_timeout_s
        try:
            result = await self._within(limit, ep.call(params))
        except _Overrun as exc:
            error = str(exc)
            self.app.logger.warning(f"{role} cancelled at its time limit", method=ep.method, key=key, id=msg_id, limit=limit)
        except Exception as exc:
            error = _describe(exc)
            self.app.logger.exception(f"{role} failed", method=ep.method, key=key, id=msg_id)
        stats = self._stats_for(role, ep)
        if stats is not None:
            stats.record(started, error)
        return result, error

    # --- durable listeners (JetStream) ----------------------------------------------
    async def _start_durable_listeners(self) -> None:
        durable = [ep for ep in self.app.registry.by_role("listener") if ep.durable]
        if not durable:
            return
        js = self.nc.jetstream()
        await ensure_stream(js, StreamLimits())
        for ep in durable:
            name = f"{self.app.name}_{ep.method}"
            config = ConsumerConfig(
                durable_name=name,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ep.ack_wait_s,
                max_deliver=ep.max_deliver + 1,  # our own loop dead-letters at max_deliver
                deliver_policy=DeliverPolicy.NEW if ep.deliver == "new" else DeliverPolicy.ALL,
                **_filters([wire.prefix_subject("", p) for p in ep.keys] or [wire.EVENTS_SUBJECTS]),
                max_ack_pending=self.options.max_inflight * 4,
            )
            try:
                await js.add_consumer(wire.STREAM, config)
            except BadRequestError as exc:
                raise ConfigError(f"cannot create durable consumer {name!r}: {exc.description}") from None
            psub = await js.pull_subscribe_bind(durable=name, stream=wire.STREAM)
            self._consumers.append(asyncio.get_running_loop().create_task(self._consume(ep, psub)))

    async def _consume(self, ep: Endpoint, psub: Any) -> None:
        batch = max(1, min(64, self.options.max_inflight))
        # A pull is never cancelled half-way: a pull request the server still holds
        # after we left would take events to a dead inbox until their ack_wait.
        while not self._stopping.is_set():
            try:
                msgs = await psub.fetch(batch, timeout=FETCH_WAIT_S)
            except (NatsTimeout, asyncio.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble: back off, the client reconnects
                self.app.logger.warning("durable fetch failed; retrying", method=ep.method, error=_describe(exc))
                await asyncio.sleep(1.0)
                continue
            tasks = [await self._spawn(self._consume_one(ep, msg)) for msg in msgs]
            if tasks:  # wait, not gather: stopping the loop must not cancel in-flight events
                await asyncio.wait(tasks)

    async def _consume_one(self, ep: Endpoint, msg: Msg) -> None:
        attempt = msg.metadata.num_delivered
        message = self._decode(msg)
        if message is None:
            await self._dead_letter(ep, msg, "event is not a JSON object")
            return
        error = await self._listen(ep, msg.subject, message, attempt__=attempt)
        if error is None:
            await _quiet(msg.ack())
        elif attempt >= ep.max_deliver:
            await self._dead_letter(ep, msg, error)
        else:
            await _quiet(msg.nak(delay=min(0.2 * 2 ** (attempt - 1), 30.0)))

    async def _dead_letter(self, ep: Endpoint, msg: Msg, error: str) -> None:
        headers = {
            **wire.error_headers(500, error),
            wire.SERVICE_HEADER: self.app.name,
            "Band-Subject": msg.subject,
            "Band-Method": ep.method,
        }
        try:
            await self.nc.publish(wire.dlq_subject(self.app.name), msg.data, headers=headers)
            await msg.term()
            self.app.logger.error("event moved to the dead-letter subject", method=ep.method, key=msg.subject, error=error)
        except Exception:
            self.app.logger.exception("dead-lettering failed; the event will be redelivered", method=ep.method)


def _start_task(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task for one request. On Python 3.12+ it starts eagerly: a handler that never
    waits finishes inside the NATS callback, without a trip through the event loop."""
    loop = asyncio.get_running_loop()
    if _EAGER is not None:
        return _EAGER(loop, work)  # type: ignore[no-any-return]
    return loop.create_task(work)


_EAGER = getattr(asyncio, "eager_task_factory", None)


def _filters(subjects: list[str]) -> dict[str, Any]:
    """One filter as ``filter_subject`` (nats-server 2.9 knows no other), several as a list."""
    return {"filter_subject": subjects[0]} if len(subjects) == 1 else {"filter_subjects": subjects}


async def _quiet(awaitable: Awaitable[Any]) -> None:
    """Await a best-effort step (reply, unsubscribe); log nothing, raise nothing."""
    try:
        await awaitable
    except Exception:
        pass
