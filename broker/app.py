"""The edge as an aiohttp ``web.Application``: routes, every answer's headers, lifecycle.

The app only describes; a runner runs it (``broker.cli``, or aiohttp's ``TestServer``
in the tests). aiohttp's router serves the fixed paths; one catch-all route takes the
hits. What every answer carries (CORS, no-cache, timing, the uid cookie) is added in one
place, :meth:`Edge.on_response_prepare`. The NATS side (:mod:`broker.running`) lives in
one cleanup context, so shutdown runs in aiohttp's order: stop accepting → finish
in-flight hits → drain NATS; until it is up, the routes that need it answer 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from nats.aio.client import Client

from band import wire

from .bodies import BodyBudget
from .config import EdgeConfig
from .discovery import Discovery
from .headers import SECURITY, UidCookie
from .hit import ClientIP
from .identify import PATH as IDENTIFY_PATH
from .identify import read_identify
from .libjs import LibJs
from .metrics import Metrics
from .pipeline import INTERNAL_ERROR, Pipeline
from .render import json_response, render
from .request import BadHit, read_hit, refusal
from .running import NatsSide, Running
from .stopping import Stopping
from .surface import coffee, favicon, keep_privately, lib_js
from .upload import Uploads
from .ws import Sockets, handle_socket

log = logging.getLogger("broker")

ALLOWED_METHODS = "GET, POST, OPTIONS"
NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
_CORS_ANY = {"Access-Control-Allow-Origin": "*", **NO_CACHE, **SECURITY}
_CORS_CREDENTIALS = {"Access-Control-Allow-Credentials": "true", "Vary": "Origin", **NO_CACHE, **SECURITY}
NATS_DOWN = "NATS is not reachable"
SOCKETS_SHARE = 0.1  # of shutdown_timeout_s: WebSockets answering the close (a browser takes milliseconds)
ROOT_PAGE = (
    "band edge: send hits to /<service>/<name>[/<projectId>] (GET or POST); "
    "POST /upload/<service>/<name> for files (multipart/form-data); "
    "/health for load balancers, /metrics for Prometheus, /wss for WebSocket.\n"
)



class Answer:
    """What a route tells :meth:`Edge.on_response_prepare` about its answer (one object
    per request: one look-up there, not one per header)."""

    __slots__ = ("private", "started", "uid")

    def __init__(self, started: float) -> None:
        self.started = started  # when the request reached the app: X-Response-Time
        self.uid: str | None = None  # the uid the answer's cookie carries (a hit's, /lib.js's)
        self.private = False  # /lib.js: kept by the visitor's browser, unlike every other answer


ANSWER = web.RequestKey("band_answer", Answer)

ANY = r"[\s\S]*"  # any rest of a path, also one holding a (decoded) line break
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Edge:
    """Per-app state. The NATS side is :attr:`running` while up (``None`` before);
    :attr:`nc`, :attr:`discovery` and :attr:`pipeline` read it and raise
    ``AttributeError`` before it is up (no silent ``None``)."""

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.sockets = Sockets()
        self.client_ip = ClientIP(config.proxy_networks())
        self.stopping = Stopping(config.shutdown_timeout_s)
        self.budget = BodyBudget(config.body_budget_bytes, stopping=self.stopping)
        self.uploads = Uploads(config, self.budget)
        self.cookie = UidCookie(config)
        self.lib = LibJs(config)
        self.running: Running | None = None
        self.nats = NatsSide(config, self.metrics, self.sockets, self.uploads, self.stopping, self._up)

    def _up(self, running: Running | None) -> None:
        self.running = running

    def _running(self, part: str) -> Running:
        if self.running is None:
            raise AttributeError(f"Edge.{part}: the edge is not connected to NATS yet")
        return self.running

    @property
    def nc(self) -> Client:
        return self._running("nc").nc

    @property
    def discovery(self) -> Discovery:
        return self._running("discovery").discovery

    @property
    def pipeline(self) -> Pipeline:
        return self._running("pipeline").pipeline

    # --- every answer -------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Before any route: the clock, preflights, refused methods; anything unexpected a bare 500."""
        request[ANSWER] = Answer(time.perf_counter())
        method = request.method
        if method == "OPTIONS":
            return self.preflight(request)
        if method != "GET" and method != "POST":
            resp = json_response({"message": f"method {method} not allowed"}, 405)
            resp.headers["Allow"] = ALLOWED_METHODS
            return resp
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("hit failed: %s %s", request.method, request.path)
            return json_response({"message": INTERNAL_ERROR}, 500)

    async def on_response_prepare(self, request: web.Request, resp: web.StreamResponse) -> None:
        """CORS, no-cache, timing and the uid cookie, on every answer but a WebSocket's."""
        if isinstance(resp, web.WebSocketResponse):
            return
        origin = request.headers.get("Origin")
        # an untrusted page still gets its hit recorded; it only cannot read the answer
        if origin and (not self.config.cors_origins or origin in self.config.cors_origins):
            extra = {"Access-Control-Allow-Origin": origin, **_CORS_CREDENTIALS}
        else:
            extra = dict(_CORS_ANY)
        answer = request.get(ANSWER)  # none only when aiohttp answered before any route ran
        if answer is not None:
            if answer.uid is not None:
                extra["Set-Cookie"] = self.cookie.header(answer.uid, self.client_ip.host(request.remote, request.headers))
            extra["X-Response-Time"] = f"{(time.perf_counter() - answer.started) * 1000:.3f}ms"
        resp.headers.update(extra)  # one update: cheaper than a setitem per header
        if answer is not None and answer.private:
            keep_privately(resp, self.lib)
        self.metrics.answered(resp.status)

    def preflight(self, request: web.Request) -> web.Response:
        resp = web.Response(status=204)
        resp.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        asked = request.headers.get("Access-Control-Request-Headers")
        resp.headers["Access-Control-Allow-Headers"] = asked or "Content-Type"
        resp.headers["Access-Control-Max-Age"] = "86400"
        return resp

    # --- routes -----------------------------------------------------------------------
    async def hit(self, request: web.Request) -> web.StreamResponse:
        """The catch-all route: an HTTP hit through the pipeline."""
        running = self.running
        if running is None:
            return json_response({"message": NATS_DOWN}, 503)
        with self.budget.hold() as held:  # the body's bytes count until the hit is answered
            try:
                hit = await read_hit(request, self.config, running.discovery.snapshot, self.client_ip, held)
            except BadHit as bad:
                return refusal(request, bad)
            request[ANSWER].uid = hit.uid
            return render(await running.pipeline.run(hit), hit.native)

    async def identify(self, request: web.Request) -> web.StreamResponse:
        """``POST /band/identify.json``: a backend's identify or alias (:mod:`broker.identify`),
        then the pipeline like any hit."""
        running = self.running
        if running is None:
            return json_response({"message": NATS_DOWN}, 503)
        with self.budget.hold() as held:
            try:
                hit = await read_identify(request, self.config, self.client_ip, held)
            except BadHit as bad:
                return refusal(request, bad)
            return render(await running.pipeline.run(hit), hit.native)

    async def root(self, request: web.Request) -> web.StreamResponse:
        """``GET /``: what this is; with a query string it is a hit like any other."""
        if request.query_string:
            return await self.hit(request)
        return web.Response(text=ROOT_PAGE, content_type="text/plain")

    async def lib_js(self, request: web.Request) -> web.StreamResponse:
        answer = request[ANSWER]
        resp, answer.uid = lib_js(request, self.lib, self.config)
        answer.private = True
        return resp

    async def favicon(self, request: web.Request) -> web.StreamResponse:
        return favicon()

    async def coffee(self, request: web.Request) -> web.StreamResponse:
        return coffee(self.config)

    async def metrics_page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type})

    async def minutes_page(self, request: web.Request) -> web.StreamResponse:
        """Hits answered 2xx and events published per minute and key, the last hour (:mod:`broker.minutes`)."""
        return json_response(self.metrics.minutes.snapshot(), 200)

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if not web.WebSocketResponse().can_prepare(request).ok:
            return json_response({"message": "/wss expects a WebSocket upgrade"}, 400)
        running = self.running
        if running is None:
            return json_response({"message": NATS_DOWN}, 503)
        return await handle_socket(
            request, pipeline=running.pipeline, sockets=self.sockets, config=self.config, client_ip=self.client_ip, metrics=self.metrics, cookie=self.cookie
        )

    async def upload(self, request: web.Request) -> web.StreamResponse:
        running = self.running
        if running is None:
            return json_response({"message": NATS_DOWN}, 503)
        resp, request[ANSWER].uid = await self.uploads.receive(request, running.nc, running.pipeline, self.client_ip)
        return resp

    async def health(self, request: web.Request) -> web.StreamResponse:
        """200 when NATS is connected and JetStream answers; else 503 saying which. The body
        also lists the services the edge routes to now (``band up`` waits for its own)."""
        running = self.running
        nats_ok = running is not None and running.nc.is_connected and running.pipeline.is_connected
        js_ok = False
        if running is not None and nats_ok:
            try:
                await running.js.stream_info(wire.STREAM)
                js_ok = True
            except Exception:  # noqa: BLE001 - any JetStream trouble means not ready
                js_ok = False
                self.nats.stream.missing()
        body = {"nats": nats_ok, "jetstream": js_ok, "inflight": running.pipeline.inflight if running is not None else 0,
                "services": sorted(running.discovery.snapshot.services) if running is not None else []}  # routed to now
        return json_response(body, 200 if nats_ok and js_ok else 503)

    # --- lifecycle --------------------------------------------------------------------
    async def on_shutdown(self, app: web.Application) -> None:
        """The stop begins: body reads get their share of the limit (:mod:`broker.stopping`);
        open sockets would hold shutdown forever, so they are closed, all at once."""
        self.stopping.begin()
        await self.sockets.close_all(self.stopping.left(self.config.shutdown_timeout_s * SOCKETS_SHARE))

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """The fixed paths first (GET and POST, as front had them), then the hits."""
        router.add_route("GET", "/", self.root)
        router.add_route("GET", "/lib.js", self.lib_js)  # a POST is a hit, as it always was
        for path, handler in (
            ("/favicon.ico", self.favicon),
            ("/coffee", self.coffee),
            ("/health", self.health),
            ("/metrics", self.metrics_page),
            ("/metrics/minutes", self.minutes_page),
            ("/wss", self.socket),
            (IDENTIFY_PATH, self.identify),
            (f"/{wire.UPLOAD_PATH}/{{tail:{ANY}}}", self.upload),
            (f"/{{tail:{ANY}}}", self.hit),
        ):
            router.add_route("*", path, handler)


EDGE = web.AppKey("band_edge", Edge)
CONFIG = web.AppKey("band_edge_config", EdgeConfig)
METRICS = web.AppKey("band_edge_metrics", Metrics)


def make_app(config: EdgeConfig | None = None) -> web.Application:
    """Build the edge's application (no I/O until a runner starts it)."""
    config = config or EdgeConfig()
    edge = Edge(config)
    app = web.Application(
        middlewares=[edge.middleware],
        client_max_size=config.max_body_bytes,
        client_max_fields=config.max_fields,
        handler_args={
            "keepalive_timeout": config.keepalive_timeout_s,
            "max_line_size": config.max_line_bytes,
            "max_field_size": config.max_line_bytes,
        },
    )
    app[EDGE] = edge
    app[CONFIG] = config
    app[METRICS] = edge.metrics
    app.cleanup_ctx.append(edge.nats.context)
    app.on_shutdown.append(edge.on_shutdown)
    app.on_response_prepare.append(edge.on_response_prepare)
    edge.add_routes(app.router)
    return app


__all__ = ["CONFIG", "EDGE", "METRICS", "Edge", "make_app"]
