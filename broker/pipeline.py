"""enrich → handle → publish for one message; every outcome is a typed band response.

No aiohttp here: the HTTP app and the WebSocket both hand a message in and render the
:class:`~band.response.Response` that comes out. Failures of the services become
typed errors (502, 503, 504), never exceptions the caller has to know about.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError

from band import wire
from band.response import BadResponse, DataResponse, ErrorResponse, PixelResponse, RedirectResponse, Response, from_wire

from .config import EdgeConfig
from .discovery import Discovery
from .metrics import Metrics

log = logging.getLogger("broker.pipeline")

_STATUS = "Status"  # NATS status header: "503" means no responders
_NO_RESPONDERS = "503"

INTERNAL_ERROR = "Internal Server Error"


def unsafe_location(location: str) -> str | None:
    """Why a redirect ``location`` must not be sent, or ``None`` when it is safe.

    Absolute http(s) URLs and same-site paths (``/x``, not ``//host``) only; any
    control character (CR/LF header injection) is refused.
    """
    if not location or any(ord(c) < 0x20 or ord(c) == 0x7F for c in location):
        return "redirect location is empty or has control characters"
    if location.startswith("/") and not location.startswith("//") and not location.startswith("/\\"):
        return None
    try:
        parts = urlsplit(location)
    except ValueError:
        return "redirect location is not a URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "redirect location must be an http(s) URL"
    return None


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``allowed`` empty = any host; else the host or a subdomain of an entry."""
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    return any(host == a or host.endswith("." + a) for a in (x.lower().lstrip(".") for x in allowed))


@dataclass
class _Gather:
    """One enrich request in flight: who is expected, who answered, what they said."""

    expected: frozenset[str]
    done: asyncio.Future[None]
    answered: set[str] = field(default_factory=set)
    results: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Runs hits through NATS; :meth:`start` before use, :meth:`stop` after."""

    def __init__(self, nc: Client, js: JetStreamContext, discovery: Discovery, config: EdgeConfig, metrics: Metrics, on_stream_missing: Callable[[], None] | None = None) -> None:
        self._on_stream_missing = on_stream_missing
        self._nc = nc
        self._js = js
        self._discovery = discovery
        self._config = config
        self._metrics = metrics
        self._gathers: dict[str, _Gather] = {}
        self._tokens = itertools.count(1)
        self._inbox = ""
        self._sub: Subscription | None = None
        self._inflight = 0

    @property
    def inflight(self) -> int:
        return self._inflight

    async def start(self) -> None:
        """One long-lived wildcard inbox receives every enricher answer of this edge."""
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_enrich_reply)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except nats.errors.Error:
                pass
            self._sub = None

    # --- the run ------------------------------------------------------------------
    async def run(self, message: dict[str, Any], image: bool = False) -> Response:
        """Enrich ``message`` in place, ask its handler, store it; the answer to send.

        ``image`` marks an image request: built-in defaults then answer the GIF.
        """
        if not self._nc.is_connected:
            return ErrorResponse(message="NATS is not reachable", statusCode=503)
        if self._inflight >= self._config.max_inflight:
            return ErrorResponse(message="edge is overloaded", statusCode=503)
        self._inflight += 1
        try:
            return await self._run(message, image)
        finally:
            self._inflight -= 1

    async def _run(self, message: dict[str, Any], image: bool) -> Response:
        metrics = self._metrics
        key: str = message["key"]
        started = time.perf_counter()
        snapshot = self._discovery.snapshot
        services = snapshot.enricher_services(key)
        if services:
            await self._enrich(message, services, self._config.enrich_timeout_for(key))
            now = time.perf_counter()
            metrics.observe("enrich", now - started)
        payload = wire.encode(message)
        publish = asyncio.ensure_future(self._publish(key, payload, message["id"]))
        try:
            handle_started = time.perf_counter()
            answer = await self._handle(message, payload, image)
            metrics.observe("handle", time.perf_counter() - handle_started)
            stored = await publish
        finally:
            if not publish.done():
                publish.cancel()
        metrics.observe("total", time.perf_counter() - started)
        if not stored:
            return ErrorResponse(message="event store unavailable, try again", statusCode=503)
        return answer

    # --- ① enrich -------------------------------------------------------------------
    async def _enrich(self, message: dict[str, Any], services: frozenset[str], timeout: float) -> None:
        token = str(next(self._tokens))
        gather = _Gather(services, asyncio.get_running_loop().create_future())
        self._gathers[token] = gather
        try:
            await self._nc.publish(wire.enrich_subject(message["key"]), wire.encode(message), reply=f"{self._inbox}.{token}")
            async with asyncio.timeout(timeout):
                await gather.done
        except TimeoutError:
            for service in services - gather.answered:
                self._metrics.enricher_timeouts.labels(service).inc()
        except nats.errors.Error:
            log.warning("enrich request for %s failed", message["key"], exc_info=True)
        finally:
            del self._gathers[token]
        if gather.results:
            data = message["data"]
            for service, value in gather.results.items():
                data[service] = value

    async def _on_enrich_reply(self, msg: Msg) -> None:
        gather = self._gathers.get(msg.subject.rsplit(".", 1)[-1])
        if gather is None or gather.done.done():
            return  # late: the hit went on without it
        headers = msg.headers
        if headers and headers.get(_STATUS) == _NO_RESPONDERS:
            gather.done.set_result(None)  # nobody subscribes any more: don't wait the deadline
            return
        service = headers.get(wire.SERVICE_HEADER) if headers else None
        if not service or service in gather.answered:
            return
        gather.answered.add(service)
        error = wire.error_from_headers(headers)
        if error is not None:
            self._metrics.enricher_errors.labels(service).inc()
        else:
            try:
                value = json.loads(msg.data) if msg.data else None
            except ValueError:
                self._metrics.enricher_errors.labels(service).inc()
                value = None
            if value is not None:
                gather.results[service] = value
        if gather.expected <= gather.answered:
            gather.done.set_result(None)

    # --- ② handle -------------------------------------------------------------------
    async def _handle(self, message: dict[str, Any], payload: bytes, image: bool) -> Response:
        key: str = message["key"]
        route = self._discovery.snapshot.handler(key)
        timeout = route.timeout_s if route is not None else self._config.handler_timeout_ms / 1000
        try:
            reply = await self._nc.request(wire.handle_subject(key), payload, timeout=timeout)
        except nats.errors.NoRespondersError:
            return self.default(message, image)
        except nats.errors.TimeoutError:
            self._metrics.handler_error("timeout")
            return ErrorResponse(message="the handler did not answer in time", statusCode=504)
        except nats.errors.Error:
            self._metrics.handler_error("nats")
            return ErrorResponse(message="NATS is not reachable", statusCode=503)
        return self.interpret(reply)

    def interpret(self, reply: Msg) -> Response:
        """A handler's reply as the response to send: errors mapped, garbage refused (502)."""
        error = wire.error_from_headers(reply.headers)
        if error is not None:
            code, description = error
            self._metrics.handler_error("error")
            if code == 500 or not 400 <= code <= 599:
                return ErrorResponse(message=INTERNAL_ERROR, statusCode=500)
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
        service = message["service"]
        if service == "pixel":
            return PixelResponse()
        if service == "redir":
            to = message["data"].get("to")
            if not isinstance(to, str) or to.startswith("/") or unsafe_location(to) is not None:
                return ErrorResponse(message="redir needs ?to= with an http(s) URL", statusCode=400)
            if not host_allowed(urlsplit(to).hostname or "", self._config.redirect_hosts):
                return ErrorResponse(message="redir: that host is not allowed", statusCode=400)
            return RedirectResponse(location=to, statusCode=302)
        if image:
            return PixelResponse()
        if service == "track":
            return DataResponse(data={"id": message["id"]})
        return DataResponse(data={"key": message["key"], "id": message["id"]})

    # --- ③ publish ------------------------------------------------------------------
    async def _publish(self, key: str, payload: bytes, msg_id: str) -> bool:
        """Store the event; ``True`` once JetStream acknowledged it."""
        started = time.perf_counter()
        try:
            if not self._nc.is_connected:
                raise nats.errors.ConnectionReconnectingError
            await self._js.publish(key, payload, timeout=self._config.publish_timeout_ms / 1000, headers={wire.MSG_ID_HEADER: msg_id})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, NoStreamResponseError) and self._on_stream_missing is not None:
                self._on_stream_missing()  # e.g. a restarted server lost an in-memory stream
            self._metrics.publish_errors.inc()
            log.warning("event %s not stored: %r", msg_id, exc)
            return False
        self._metrics.observe("publish", time.perf_counter() - started)
        return True


__all__ = ["Pipeline", "unsafe_location", "host_allowed", "INTERNAL_ERROR"]
