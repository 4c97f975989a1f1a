"""classify → check → enrich → handle → publish for one hit; every outcome is a typed band response.

Every transport's hit comes through :meth:`Pipeline.run_stored`, so this is where each one
is judged a person's or a bot's (:mod:`broker.bots`), counted, and flagged or dropped, and
checked against its key's schema (:mod:`band.schemas`) once, before enrichment: ``warn``
marks the message, ``enforce`` publishes it as it came for the store's ``failed_events``
and answers without enriching or asking a handler (a 400 listing the errors for a native
caller, the usual answer for a browser's pixel, beacon or image).

No aiohttp here: every transport hands a :class:`~broker.hit.Hit` in and renders the
:class:`~band.response.Response` that comes out. Failures of the services become
typed errors (502, 503, 504), never exceptions the caller has to know about. Every
request, reply and deadline belongs to the :class:`~broker.link.Link`; the hit's trace is
opened and ended here, whatever way the hit ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from band import schemas, wire
from band.response import BadResponse, DataResponse, ErrorResponse, RedirectResponse, Response, from_wire

from .bots import DROP, FLAG, Bots
from .builtin_enrichers import Builtins
from .config import EdgeConfig
from .default_answers import built_in_answer
from .discovery import Discovery
from .hit import Hit, http_status
from .link import Link, LinkDown, NoResponders, Reply, ReplyTimeout, Request
from .metrics import Metrics
from .redirects import unsafe_location
from .tracing import Trace, open_trace

log = logging.getLogger("broker.pipeline")

INTERNAL_ERROR = "Internal Server Error"
CLIENT_GONE = 499  # the trace's status when the client went away mid-hit
_TOO_LARGE = ErrorResponse(message="event too large for NATS", statusCode=413)
_NOT_STORED = "event store unavailable, try again"


def _not_text(message: dict[str, Any]) -> ErrorResponse:
    """The 400 for a message holding a lone surrogate, naming where."""
    problem = wire.lone_surrogate(message) or "text that is not valid Unicode"
    return ErrorResponse(message=f"the hit holds text that is not UTF-8: {problem}", statusCode=400)


class Pipeline:
    """Runs hits through NATS over a connected :class:`~broker.link.Link`."""

    def __init__(self, link: Link, discovery: Discovery, config: EdgeConfig, metrics: Metrics,
                 on_stream_missing: Callable[[], None] | None = None, builtins: Builtins | None = None) -> None:
        self._link = link
        self._discovery = discovery
        self._builtins = builtins if builtins is not None and builtins.active else None
        self._config = config
        self._metrics = metrics
        self._on_stream_missing = on_stream_missing
        self._inflight = 0
        self._publish_timeout = config.publish_timeout_ms / 1000
        self._bots = Bots.configured(config.bots, config.spam_referrers_file, config.burst_hits) if config.bot_detection else None
        checked = schemas.load(config.schemas_dir)
        self._schema_for = checked.for_key if len(checked) else None

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def armed_deadlines(self) -> int:
        """Deadline timers armed now; 0 between hits (a finished hit leaves none to fire)."""
        return self._link.armed_deadlines

    @property
    def is_connected(self) -> bool:
        return self._link.is_connected

    # --- the run ------------------------------------------------------------------
    async def run(self, hit: Hit) -> Response:
        """Enrich the hit's message in place, ask its handler, store it; the answer to send."""
        return (await self.run_stored(hit))[0]

    async def run_stored(self, hit: Hit) -> tuple[Response, bool]:
        """:meth:`run`, and whether the event is in the stream (JetStream acknowledged it):
        an upload removes its files when it is not. The hit's trace opens and ends here:
        with the answer's status, 499 when the client went away, 500 when the run failed."""
        trace = open_trace(hit.headers, hit.method, hit.path, hit.message)
        if not self._link.is_connected:
            outcome: tuple[Response, bool] = ErrorResponse(message="NATS is not reachable", statusCode=503), False
        elif self._inflight >= self._config.max_inflight:
            outcome = ErrorResponse(message="edge is overloaded", statusCode=503), False
        else:
            self._inflight += 1
            try:
                if self._bots is not None and not hit.trusted and self._judge(hit.message) == DROP:
                    outcome = await self._handle(hit.message, wire.encode(hit.message), hit.image, trace), False
                else:
                    outcome = await self._run(hit.message, hit.image, trace, hit.native)
            except UnicodeEncodeError:  # text no encoder takes (a lone surrogate) that no reader refused
                outcome = _not_text(hit.message), False
            except BaseException as exc:
                if trace is not None:
                    trace.end(CLIENT_GONE if isinstance(exc, asyncio.CancelledError) else 500)
                raise
            finally:
                self._inflight -= 1
        status = http_status(outcome[0], hit.native)
        if trace is not None:
            trace.end(status)
        self._metrics.hit(hit.message.get("service"), hit.message.get("name"), status, outcome[1])
        return outcome

    def _judge(self, message: dict[str, Any]) -> str:
        """Classify the hit (:mod:`broker.bots`), count it, flag its message; the action."""
        assert self._bots is not None
        reason = self._bots.classify(message)
        if not reason:
            return ""
        action = self._bots.action(reason)
        self._metrics.bot(reason, action)
        if action == FLAG:
            message[wire.BOT_FIELD] = reason
        return action

    def _check(self, message: dict[str, Any], key: str) -> str:
        """The key's schema, when it has one, against the message: the errors into the
        message's ``schema_errors``, counted; the schema's mode when it failed, else ``""``."""
        assert self._schema_for is not None
        schema = self._schema_for(key)
        if schema is None:
            return ""
        verdict = schema.verdict(message)
        if verdict is None:
            return ""
        message[wire.SCHEMA_ERRORS_FIELD] = verdict
        self._metrics.schema_failed(schema.key, schema.mode)
        return schema.mode

    async def _run(self, message: dict[str, Any], image: bool, trace: Trace | None, native: bool = False) -> tuple[Response, bool]:
        metrics = self._metrics
        key: str = message["key"]
        started = time.perf_counter()
        limit = self._link.max_payload - 1024  # room for subject and headers
        if self._schema_for is not None and self._check(message, key) == schemas.ENFORCE:
            return await self._keep_failed(message, image, native, limit, trace)
        services, paths = self._discovery.snapshot.enrich_plan(key, wire.BOT_FIELD in message)
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
        # ③ is sent before ② so both travel in one write; the answer waits for both, and
        # the ack's deadline runs from now, alongside the handler's, not after it.
        stored = self._send(message, payload, limit, trace)
        if isinstance(stored, ErrorResponse):
            return stored, False
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
            self._link.forget(stored)  # the hit was cancelled: nobody will read the ack
        metrics.observe("publish", time.perf_counter() - handle_started)
        metrics.observe("total", time.perf_counter() - started)
        if not ok:
            return ErrorResponse(message=_NOT_STORED, statusCode=503), False
        return answer, True

    def _send(self, message: dict[str, Any], payload: bytes, limit: int, trace: Trace | None) -> Request | ErrorResponse:
        """Publish ``payload`` to the stream (③), or the error to answer when it cannot go."""
        if len(payload) > limit:  # a server closes a connection that sends more than max_payload
            return _TOO_LARGE
        key: str = message["key"]
        headers = {wire.MSG_ID_HEADER: message["id"]}
        if trace is not None:
            trace.publish(key, headers)
        try:
            return self._link.send(key, payload, self._publish_timeout, headers)
        except LinkDown as exc:
            return self._not_stored(message["id"], exc)

    async def _keep_failed(self, message: dict[str, Any], image: bool, native: bool, limit: int,
                           trace: Trace | None) -> tuple[Response, bool]:
        """An event its schema enforces and refuses: published as it came (durable, once,
        for ``failed_events``); a native caller is told every error, a browser gets its
        usual answer so a bad field never breaks a page."""
        stored = self._send(message, wire.encode(message), limit, trace)
        if isinstance(stored, ErrorResponse):
            return stored, False
        try:
            ok = await self._stored(stored, message["id"])
            if trace is not None:
                trace.published(ok)
        finally:
            self._link.forget(stored)
        if not ok:
            return ErrorResponse(message=_NOT_STORED, statusCode=503), False
        if native:
            return schema_refusal(message[wire.SCHEMA_ERRORS_FIELD]), True
        return self.default(message, image), True

    # --- ① enrich -------------------------------------------------------------------
    async def _enrich(
        self, message: dict[str, Any], payload: bytes, services: frozenset[str], timeout: float, trace: Trace | None
    ) -> None:
        """Ask every enricher of the key at once; merge each answer under ``data.<service>``."""
        data = message["data"]
        results: dict[str, Any] = {}
        errors = self._metrics.enricher_errors

        def answered(service: str, reply: Reply) -> None:
            ok = wire.error_from_headers(reply.headers) is None
            value = None
            if ok:
                try:
                    value = wire.decode(reply.data)
                except ValueError:
                    ok = False
            if not ok:
                errors.labels(service).inc()
            elif value is not None:
                results[service] = value
            if trace is not None:
                trace.enricher(service, ok)

        headers = trace.enrich(message["key"], services) if trace is not None else None
        try:
            late = await self._link.scatter(wire.enrich_subject(message["key"]), payload, services, timeout, answered, headers)
        except LinkDown:
            log.warning("enrich request for %s not sent: NATS link down", message["key"])
        else:
            for service in late:
                self._metrics.enricher_timeouts.labels(service).inc()
        finally:
            if trace is not None:
                trace.enriched()
        data.update(results)

    # --- ② handle -------------------------------------------------------------------
    async def _handle(self, message: dict[str, Any], payload: bytes, image: bool, trace: Trace | None = None) -> Response:
        key: str = message["key"]
        route = self._discovery.snapshot.handler(key)
        if route is None:  # nobody handles it: no request; a new handler is routed from the next discovery refresh
            return self.default(message, image)
        try:
            headers = trace.handle(key) if trace is not None else None
            reply = await self._link.request(wire.handle_subject(key), payload, route.timeout_s, headers)
        except NoResponders:
            return self.default(message, image)
        except ReplyTimeout:
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
    async def _stored(self, sent: Request, msg_id: str) -> bool:
        """``True`` once JetStream acknowledged the event (a JetStream publish is a request
        on the subject itself; the stream answers with a PubAck)."""
        try:
            ack = await self._link.reply(sent)
        except NoResponders as exc:  # no stream over the subject (e.g. a restarted server lost it)
            if self._on_stream_missing is not None:
                self._on_stream_missing()
            self._not_stored(msg_id, exc)
            return False
        except ReplyTimeout as exc:
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
        return ErrorResponse(message=_NOT_STORED, statusCode=503)


def schema_refusal(verdict: dict[str, Any]) -> DataResponse:
    """The 400 a native caller gets for an event its schema refuses: every error with its path."""
    errors = verdict["errors"]
    listed = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
    return DataResponse(statusCode=400, data={
        "message": f"the event does not match schema {verdict['schema']}@{verdict['version']}: {listed}. "
                   "It is kept in failed_events; fix the sender, or the schema and run 'band store replay-failed'",
        "schema": verdict["schema"], "version": verdict["version"], "errors": errors})


__all__ = ["INTERNAL_ERROR", "Pipeline", "schema_refusal"]
