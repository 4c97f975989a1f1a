"""The edge as an aiohttp ``web.Application``: routes, shared state, lifecycle.

The app only describes; a runner runs it (``broker.cli``, or aiohttp's ``TestServer``
in the tests). NATS, discovery and the pipeline live in one cleanup context, so
shutdown runs in aiohttp's order: stop accepting → finish in-flight hits → drain NATS.
Startup does not wait for NATS: with NATS down the port still binds and every hit and
``/health`` answer 503 (a load balancer sees the edge) until NATS is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator

import nats
import nats.errors
from aiohttp import web
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from band import tracing, wire
from band._runtime.connect import close, connect
from band._runtime.stream import ensure_stream

from .builtin_enrichers import Builtins
from .config import EdgeConfig
from .discovery import Discovery
from .headers import SECURITY, UidCookie
from .libjs import LibJs
from .surface import coffee, favicon, lib_js
from .metrics import Metrics
from .pipeline import INTERNAL_ERROR, Pipeline
from .render import json_response, render
from .tracing import HitTrace
from .request import BadHit, ClientIP, read_hit
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
UPLOAD_PATH = f"/{wire.UPLOAD_PATH}/"
NATS_DOWN = "NATS is not reachable"
ROOT_PAGE = (
    "band edge: send hits to /<service>/<name>[/<projectId>] (GET or POST); "
    "POST /upload/<service>/<name> for files (multipart/form-data); "
    "/health for load balancers, /metrics for Prometheus, /wss for WebSocket.\n"
)


class Edge:
    """Per-app state. NATS-side parts exist only while the app runs; reading them
    before start raises ``AttributeError`` (no silent ``None``)."""

    nc: Client
    js: JetStreamContext
    discovery: Discovery
    pipeline: Pipeline

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.sockets = Sockets()
        self.client_ip = ClientIP(config.proxy_networks())
        self.uploads = Uploads(config)
        self.stream_ready = False
        self._stream_task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # set once NATS, discovery and the pipeline are up
        self._connect_failed = asyncio.Event()  # the first connect attempt failed: start serving 503s
        self._builtins: Builtins | None = None
        self.cookie = UidCookie(config)
        self.lib = LibJs(config)

    # --- every answer -------------------------------------------------------------
    def finish(self, request: web.Request, resp: web.StreamResponse, started: float, uid: str | None = None) -> None:
        """CORS, no-cache, timing and the uid cookie, on every answer."""
        origin = request.headers.get("Origin")
        # an untrusted page still gets its hit recorded; it only cannot read the answer
        if origin and (not self.config.cors_origins or origin in self.config.cors_origins):
            extra = {"Access-Control-Allow-Origin": origin, **_CORS_CREDENTIALS}
        else:
            extra = dict(_CORS_ANY)
        if uid is not None:
            extra["Set-Cookie"] = self.cookie.header(uid, self.client_ip.host(request.remote, request.headers))
        extra["X-Response-Time"] = f"{(time.perf_counter() - started) * 1000:.3f}ms"
        resp.headers.update(extra)  # one update: cheaper than a setitem per header
        self.metrics.answered(resp.status)

    # --- routes -----------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """The one route: fixed paths, then hits; anything unexpected is a bare 500."""
        started = time.perf_counter()
        uid: str | None = None
        trace: HitTrace | None = None
        try:
            method = request.method
            if method == "OPTIONS":
                resp: web.StreamResponse = self.preflight(request)
            elif method != "GET" and method != "POST":
                resp = json_response({"message": f"method {method} not allowed"}, 405)
                resp.headers["Allow"] = ALLOWED_METHODS
            else:
                path = request.path
                if path == "/wss" and not web.WebSocketResponse().can_prepare(request).ok:
                    resp = json_response({"message": "/wss expects a WebSocket upgrade"}, 400)
                elif path == "/" and method == "GET" and not request.query_string:
                    resp = web.Response(text=ROOT_PAGE, content_type="text/plain")
                elif path == "/lib.js" and method == "GET":
                    resp, uid = lib_js(request, self.lib, self.config)
                elif path == "/favicon.ico":
                    resp = favicon()
                elif path == "/coffee":
                    resp = coffee(self.config)
                elif path == "/health":
                    resp = await self.health()
                elif path == "/metrics":
                    resp = web.Response(body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type})
                elif not self.ready.is_set():  # NATS not (yet) there: everything below needs it
                    resp = json_response({"message": NATS_DOWN}, 503)
                elif path == "/wss":
                    return await handle_socket(request, pipeline=self.pipeline, sockets=self.sockets, config=self.config, client_ip=self.client_ip, metrics=self.metrics, cookie=self.cookie)
                elif path.startswith(UPLOAD_PATH):
                    resp, uid = await self.uploads.receive(request, self.nc, self.pipeline, self.client_ip)
                else:
                    try:
                        hit = await read_hit(request, self.config, self.discovery.snapshot, self.client_ip)
                    except BadHit as bad:
                        resp = json_response({"message": bad.message}, bad.status)
                    else:
                        uid = hit.message["uid"]
                        if tracing.ON:
                            trace = HitTrace(request.headers, method, path, hit.message)
                        resp = render(await self.pipeline.run(hit.message, hit.image, trace), hit.native)
        except asyncio.CancelledError:
            if trace is not None:
                trace.end(499)  # the client went away mid-hit
            raise
        except Exception:
            log.exception("hit failed: %s %s", request.method, request.path)
            resp = json_response({"message": INTERNAL_ERROR}, 500)
        self.finish(request, resp, started, uid)
        if trace is not None:
            trace.end(resp.status)
        return resp

    def preflight(self, request: web.Request) -> web.Response:
        resp = web.Response(status=204)
        resp.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        asked = request.headers.get("Access-Control-Request-Headers")
        resp.headers["Access-Control-Allow-Headers"] = asked or "Content-Type"
        resp.headers["Access-Control-Max-Age"] = "86400"
        return resp

    async def health(self) -> web.Response:
        """200 when NATS is connected and JetStream answers; else 503 saying which. The body
        also lists the services the edge routes to now (``band up`` waits for its own)."""
        nats_ok = self.ready.is_set() and self.nc.is_connected and self.pipeline.is_connected
        js_ok = False
        if nats_ok:
            try:
                await self.js.stream_info(wire.STREAM)
                js_ok = True
            except Exception:
                js_ok = False
                self.stream_missing()
        body = {"nats": nats_ok, "jetstream": js_ok, "inflight": self.pipeline.inflight if hasattr(self, "pipeline") else 0,
                "services": sorted(self.discovery.snapshot.services) if hasattr(self, "discovery") else []}  # routed to now
        return json_response(body, 200 if nats_ok and js_ok else 503)

    # --- lifecycle --------------------------------------------------------------------
    async def connect(self) -> Client:
        """Connect, retrying until NATS answers; afterwards nats-py reconnects forever."""
        while True:
            try:
                # band's connect: credentials out of the URLs (cluster failover), NATS_CA for TLS
                return await connect(
                    list(self.config.nats_urls),
                    name=self.config.name,
                    error_cb=self._nats_error,
                    disconnected_cb=self._nats_disconnected,
                    reconnected_cb=self._nats_reconnected,
                )
            except (OSError, nats.errors.Error) as exc:
                log.warning("NATS %s not reachable (%r); retrying", ",".join(self.config.nats_urls), exc)
                await asyncio.sleep(1.0)

    async def _nats_error(self, exc: Exception) -> None:
        self._connect_failed.set()
        log.warning("NATS: %r", exc)

    async def _nats_disconnected(self) -> None:
        if not hasattr(self, "nc") or self.nc.is_closed or self.nc.is_draining:
            return
        log.warning("NATS disconnected; hits answer 503 until it is back")

    async def _nats_reconnected(self) -> None:
        log.info("NATS reconnected")
        self.stream_missing()
        self.uploads.reset()

    def stream_missing(self) -> None:
        """(Re)create the events stream in the background, once at a time."""
        self.stream_ready = False
        if self._stream_task is None or self._stream_task.done():
            self._stream_task = asyncio.ensure_future(self._keep_stream())

    async def _keep_stream(self) -> None:
        """Create the events stream; retry in the background while JetStream is away."""
        while not self.stream_ready:
            try:
                await ensure_stream(self.js, self.config.stream_limits())
                self.stream_ready = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events stream %s not ready: %r", wire.STREAM, exc)
                await asyncio.sleep(2.0)

    async def nats_context(self, app: web.Application) -> AsyncIterator[None]:
        """NATS, stream, discovery, pipeline, push subscription; torn down in reverse.

        Brought up in the background: startup waits until it is up or the first connect
        attempt failed, so the port binds either way and a stop never waits for NATS.
        """
        tasks: list[asyncio.Task[None]] = []
        pushes: list[Subscription] = []
        bring_up = asyncio.create_task(self._bring_up(tasks, pushes))
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
            if self._stream_task is not None:
                tasks.append(self._stream_task)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if hasattr(self, "nc"):
                await self._close_nats(pushes)

    async def _bring_up(self, tasks: list[asyncio.Task[None]], pushes: list[Subscription]) -> None:
        """Connect (retrying until NATS answers), then the stream, pipeline, push, discovery."""
        self.nc = await self.connect()
        self.js = self.nc.jetstream()
        self.discovery = Discovery(
            self.nc,
            interval_s=self.config.discovery_interval_s,
            window_s=self.config.discovery_window_s,
            keep_polls=self.config.discovery_keep_polls,
            default_timeout_ms=self.config.handler_timeout_ms,
        )
        self._builtins = builtins = Builtins(self.config, self.metrics)
        await builtins.start()
        self.pipeline = Pipeline(self.discovery, self.config, self.metrics, self.stream_missing, builtins)
        self.stream_missing()
        assert self._stream_task is not None
        await asyncio.wait([self._stream_task], timeout=self.config.publish_timeout_ms / 1000)
        await self.pipeline.start(self.nc)
        pushes.append(await self.nc.subscribe(f"{wire.WS_PREFIX}.>", cb=self.sockets.on_push))
        first_poll = asyncio.Event()
        tasks.append(asyncio.create_task(self.discovery.run(first_poll)))
        await first_poll.wait()
        self.ready.set()
        log.info("band edge ready: NATS connected")

    async def _close_nats(self, pushes: list[Subscription]) -> None:
        if not self.nc.is_closed:
            for push in pushes:
                with contextlib.suppress(nats.errors.Error):
                    await push.unsubscribe()
        if hasattr(self, "pipeline"):
            await self.pipeline.stop()
        if self._builtins is not None:
            await self._builtins.stop()
        if self.nc.is_closed:
            return
        if not self.nc.is_connected:  # reconnecting (or never connected): nothing to drain
            await close(self.nc)  # what it still buffers has nowhere to go; that is logged, not raised
            return
        try:
            await self.nc.drain()
        except (nats.errors.Error, asyncio.TimeoutError):
            await close(self.nc)

    async def on_shutdown(self, app: web.Application) -> None:
        """Open sockets would hold shutdown forever: close them first."""
        await self.sockets.close_all()


EDGE = web.AppKey("band_edge", Edge)
CONFIG = web.AppKey("band_edge_config", EdgeConfig)
METRICS = web.AppKey("band_edge_metrics", Metrics)


def make_app(config: EdgeConfig | None = None) -> web.Application:
    """Build the edge's application (no I/O until a runner starts it)."""
    config = config or EdgeConfig()
    edge = Edge(config)
    app = web.Application(
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
    app.cleanup_ctx.append(edge.nats_context)
    app.on_shutdown.append(edge.on_shutdown)
    app.router.add_route("*", "/{tail:.*}", edge.dispatch)
    return app


__all__ = ["make_app", "Edge", "EDGE", "CONFIG", "METRICS"]
