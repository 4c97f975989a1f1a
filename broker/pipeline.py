"""enrich → handle → publish for one message; every outcome is a typed band response.

No aiohttp here: the HTTP app and the WebSocket both hand a message in and render the
:class:`~band.response.Response` that comes out. Failures of the services become
typed errors (502, 503, 504), never exceptions the caller has to know about.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from nats.aio.client import Client

from band import wire
from band.runtime import Deadlines
from band.response import BadResponse, ErrorResponse, RedirectResponse, Response, from_wire

from .builtin_enrichers import Builtins
from .default_answers import built_in_answer
from .config import EdgeConfig
from .discovery import Discovery
from .link import Link, LinkDown, Reply
from .metrics import Metrics
from .redirects import unsafe_location
from .tracing import Trace

log = logging.getLogger("broker.pipeline")

_NO_RESPONDERS = wire.NO_RESPONDERS_STATUS

INTERNAL_ERROR = "Internal Server Error"
# A reply deadline fires at most 5 ms late: fine for deadlines of hundreds of milliseconds.
DEADLINE_SLOT_S = 0.005
_TOO_LARGE = ErrorResponse(message="event too large for NATS", statusCode=413)


def _not_text(message: dict[str, Any]) -> ErrorResponse:
    """The 400 for a message holding a lone surrogate, naming where."""
    problem = wire.lone_surrogate(message) or "text that is not valid Unicode"
    return ErrorResponse(message=f"the hit holds text that is not UTF-8: {problem}", statusCode=400)


@dataclass
class _Gather:
    """One enrich request in flight: who is expected, who answered, what they said."""

    expected: frozenset[str]
    done: asyncio.Future[None]
    answered: set[str] = field(default_factory=set)
    results: dict[str, Any] = field(default_factory=dict)
    trace: Trace | None = None


class _Timeout(Exception):
    """A request of the mux got no reply in time."""


class _NoResponders(Exception):
    """Nobody subscribes to the subject (NATS status 503)."""


class Pipeline:
    """Runs hits through NATS; :meth:`start` before use, :meth:`stop` after.

    Every reply the edge waits for (enricher answers, handler replies, JetStream acks)
    arrives on one long-lived wildcard inbox of the :mod:`~broker.link` and is matched
    by token: no subscription, task or random token per hit.
    """

    _link: Link

    def __init__(self, discovery: Discovery, config: EdgeConfig, metrics: Metrics, on_stream_missing: Callable[[], None] | None = None, builtins: Builtins | None = None) -> None:
        self._discovery = discovery
        self._builtins = builtins if builtins is not None and builtins.active else None
        self._config = config
        self._metrics = metrics
        self._on_stream_missing = on_stream_missing
        self._gathers: dict[str, _Gather] = {}
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._tokens = itertools.count(1)
        self._inflight = 0
        self._deadlines = Deadlines(slot_s=DEADLINE_SLOT_S)
        self._publish_timeout = config.publish_timeout_ms / 1000

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def armed_deadlines(self) -> int:
        """Deadline timers armed now; 0 between hits (a finished hit leaves none to fire)."""
        return self._deadlines.armed

    async def start(self, nc: Client) -> None:
        """Open the link: one reply inbox on ``nc`` for every hit of this edge."""
        link = Link(nc, self._on_reply)
        await link.connect()
        self._link = link

    async def stop(self) -> None:
        self._deadlines.close()
        if hasattr(self, "_link"):
            await self._link.close()

    @property
    def is_connected(self) -> bool:
        return hasattr(self, "_link") and self._link.is_connected

    # --- the run ------------------------------------------------------------------
    async def run(self, message: dict[str, Any], image: bool = False, trace: Trace | None = None) -> Response:
        """Enrich ``message`` in place, ask its handler, store it; the answer to send.

        ``image`` marks an image request: built-in defaults then answer the GIF.
        """
        return (await self.run_stored(message, image, trace))[0]

    async def run_stored(self, message: dict[str, Any], image: bool = False, trace: Trace | None = None) -> tuple[Response, bool]:
        """:meth:`run`, and whether the event is in the stream (JetStream acknowledged it):
        an upload removes its files when it is not."""
        if not self._link.is_connected:
            return ErrorResponse(message="NATS is not reachable", statusCode=503), False
        if self._inflight >= self._config.max_inflight:
            return ErrorResponse(message="edge is overloaded", statusCode=503), False
        self._inflight += 1
        try:
            return await self._run(message, image, trace)
        except UnicodeEncodeError:  # text no encoder takes (a lone surrogate) that no reader refused
            return _not_text(message), False
        finally:
            self._inflight -= 1

    async def _run(self, message: dict[str, Any], image: bool, trace: Trace | None) -> tuple[Response, bool]:
        metrics = self._metrics
        key: str = message["key"]
        started = time.perf_counter()
        limit = self._link.max_payload - 1024  # room for subject and headers
        services, paths = self._discovery.snapshot.enrich_plan(key)
        reading = self._builtins.begin(message) if self._builtins is not None else None  # fpid now, stored meanwhile
        if services:
            # only what the enrichers read (revision 2), else the whole message
            asked = wire.encode(message if paths is None else wire.enrich_request(message, paths))
            if len(asked) > limit:
                if reading is not None:
                    reading.cancel()
                return _TOO_LARGE, False
            await self._enrich(message, asked, services, self._config.enrich_timeout_for(key), trace)
        else:
            metrics.unenriched.inc()  # stored without enrichment: counted, so nobody mistakes it for enriched
        if reading is not None:
            assert self._builtins is not None
            await self._builtins.finish(reading, message, max(0.0, self._config.enrich_timeout_for(key) - (time.perf_counter() - started)))
        if services or reading is not None:
            metrics.observe("enrich", time.perf_counter() - started)
        payload = wire.encode(message)
        if len(payload) > limit:  # a server closes a connection that sends more than max_payload
            return _TOO_LARGE, False
        # ③ is sent before ② so both travel in one write; the answer waits for both.
        headers = {wire.MSG_ID_HEADER: message["id"]}
        if trace is not None:
            trace.publish(key, headers)
        try:
            stored = self._send(key, payload, headers)
        except LinkDown as exc:
            return self._not_stored(message["id"], exc), False
        # the ack's deadline runs from now, alongside the handler's, not after it
        ack_slot = self._deadlines.fail(stored[1], self._publish_timeout, _Timeout)
        handle_started = time.perf_counter()
        try:
            answer = await self._handle(message, payload, image, trace)
            if trace is not None:
                trace.handled(answer)
            metrics.observe("handle", time.perf_counter() - handle_started)
            ok = await self._stored(stored, message["id"])
            if trace is not None:
                trace.published(ok)
        finally:
            self._waiting.pop(stored[0], None)
            self._deadlines.release(stored[1], ack_slot)
            if not stored[1].done():
                stored[1].cancel()  # the hit was cancelled: nobody will read the ack
        metrics.observe("publish", time.perf_counter() - handle_started)
        metrics.observe("total", time.perf_counter() - started)
        if not ok:
            return ErrorResponse(message="event store unavailable, try again", statusCode=503), False
        return answer, True

    # --- the reply mux ----------------------------------------------------------------
    def _send(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> tuple[str, asyncio.Future[Reply]]:
        token = "r" + str(next(self._tokens))
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._link.publish(subject, payload, self._link.inbox + token, headers)
        self._waiting[token] = fut
        return token, fut

    async def _wait(self, sent: tuple[str, asyncio.Future[Reply]], timeout: float | None) -> Reply:
        """The reply, or :class:`_Timeout` / :class:`_NoResponders` (``timeout=None``: its
        deadline was set when it was sent)."""
        token, fut = sent
        slot = self._deadlines.fail(fut, timeout, _Timeout) if timeout is not None else None
        try:
            msg = await fut
        finally:
            self._waiting.pop(token, None)
            if slot is not None:
                self._deadlines.release(fut, slot)
        if msg.status == _NO_RESPONDERS and not msg.data:
            raise _NoResponders()
        return msg

    def _on_reply(self, token: str, reply: Reply) -> None:
        if token[:1] == "r":
            fut = self._waiting.get(token)
            if fut is not None and not fut.done():
                fut.set_result(reply)
        else:
            self._on_enrich_reply(token, reply)

    # --- ① enrich -------------------------------------------------------------------
    async def _enrich(
        self, message: dict[str, Any], payload: bytes, services: frozenset[str], timeout: float, trace: Trace | None
    ) -> None:
        token = "e" + str(next(self._tokens))
        gather = _Gather(services, asyncio.get_running_loop().create_future(), trace=trace)
        self._gathers[token] = gather
        headers = trace.enrich(message["key"], services) if trace is not None else None
        slot: int | None = None
        try:
            self._link.publish(wire.enrich_subject(message["key"]), payload, self._link.inbox + token, headers)
            slot = self._deadlines.fail(gather.done, timeout, _Timeout)
            await gather.done
        except _Timeout:
            for service in services - gather.answered:
                self._metrics.enricher_timeouts.labels(service).inc()
        except LinkDown:
            log.warning("enrich request for %s not sent: NATS link down", message["key"])
        finally:
            del self._gathers[token]
            if slot is not None:
                self._deadlines.release(gather.done, slot)
            if trace is not None:
                trace.enriched()
        if gather.results:
            data = message["data"]
            for service, value in gather.results.items():
                data[service] = value

    def _on_enrich_reply(self, token: str, msg: Reply) -> None:
        gather = self._gathers.get(token)
        if gather is None or gather.done.done():
            return  # late: the hit went on without it
        headers = msg.headers
        if msg.status == _NO_RESPONDERS:
            gather.done.set_result(None)  # nobody subscribes any more: don't wait the deadline
            return
        service = headers.get(wire.SERVICE_HEADER) if headers else None
        if not service or service in gather.answered:
            return
        gather.answered.add(service)
        ok = wire.error_from_headers(headers) is None
        value = None
        if ok:
            try:
                value = wire.decode(msg.data)
            except ValueError:
                ok = False
        if not ok:
            self._metrics.enricher_errors.labels(service).inc()
        elif value is not None:
            gather.results[service] = value
        if gather.trace is not None:
            gather.trace.enricher(service, ok)
        if gather.expected <= gather.answered:
            gather.done.set_result(None)

    # --- ② handle -------------------------------------------------------------------
    async def _handle(self, message: dict[str, Any], payload: bytes, image: bool, trace: Trace | None = None) -> Response:
        key: str = message["key"]
        route = self._discovery.snapshot.handler(key)
        if route is None:  # nobody handles it: no request; a new handler is routed from the next discovery refresh
            return self.default(message, image)
        try:
            headers = trace.handle(key) if trace is not None else None
            reply = await self._wait(self._send(wire.handle_subject(key), payload, headers), route.timeout_s)
        except _NoResponders:
            return self.default(message, image)
        except _Timeout:
            self._metrics.handler_error("timeout")
            return ErrorResponse(message="the handler did not answer in time", statusCode=504)
        except LinkDown:
            self._metrics.handler_error("nats")
            return ErrorResponse(message="NATS is not reachable", statusCode=503)
        return self.interpret(reply)

    def interpret(self, reply: Reply) -> Response:
        """A handler's reply as the response to send: errors mapped, garbage refused (502)."""
        error = wire.error_from_headers(reply.headers)
        if error is not None:
            code, description = error
            self._metrics.handler_error("error")
            if not 400 <= code <= 599:
                return ErrorResponse(message=INTERNAL_ERROR, statusCode=500)
            if code >= 500:  # the service's trouble: its text (names, hosts) stays inside
                return ErrorResponse(statusCode=code)
            return ErrorResponse(message=description, statusCode=code)
        try:
            answer = from_wire(wire.decode(reply.data))
        except (wire.DecodeError, BadResponse) as exc:
            self._metrics.handler_error("bad_reply")
            log.warning("handler reply refused: %s", exc)
            return ErrorResponse(message="the handler answered with an invalid response", statusCode=502)
        if isinstance(answer, RedirectResponse):
            problem = unsafe_location(answer.location)
            if problem is not None:
                self._metrics.handler_error("bad_reply")
                log.warning("handler redirect refused: %s", problem)
                return ErrorResponse(message="the handler answered with an unsafe redirect", statusCode=502)
        return answer

    def default(self, message: dict[str, Any], image: bool) -> Response:
        """The built-in answer when no service handles the key."""
        return built_in_answer(message, image, self._config.redirect_hosts)

    # --- ③ publish ------------------------------------------------------------------
    async def _stored(self, sent: tuple[str, asyncio.Future[Reply]], msg_id: str) -> bool:
        """``True`` once JetStream acknowledged the event (a JetStream publish is a request
        on the subject itself; the stream answers with a PubAck)."""
        try:
            ack = await self._wait(sent, None)
        except _NoResponders as exc:  # no stream over the subject (e.g. a restarted server lost it)
            if self._on_stream_missing is not None:
                self._on_stream_missing()
            self._not_stored(msg_id, exc)
            return False
        except _Timeout as exc:
            self._not_stored(msg_id, exc)
            return False
        try:
            answer = wire.decode(ack.data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "error" in answer or "seq" not in answer:  # a PubAck has the seq
            self._not_stored(msg_id, ack.data[:200].decode("utf-8", "replace"))
            return False
        return True

    def _not_stored(self, msg_id: str, why: object) -> ErrorResponse:
        self._metrics.publish_errors.inc()
        log.warning("event %s not stored: %r", msg_id, why)
        return ErrorResponse(message="event store unavailable, try again", statusCode=503)


__all__ = ["Pipeline", "INTERNAL_ERROR"]
