"""``band panel``: the operator's web panel as an aiohttp app, its lifecycle and its command.

NATS, the sampler and the live tail live in one cleanup context: they start before the
first request and stop, in reverse, after the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from importlib import resources
from urllib.parse import quote

import aiohttp
from aiohttp import web

from ..runtime import Signals, close, connect, ensure_dlq_stream
from . import api, forget
from .auth import COOKIE, Auth
from .config import PanelConfig, PanelConfigError, from_env
from .control import ControlClient
from .sampler import Sampler
from .tail import Tail

log = logging.getLogger("band.panel")
AUTH: web.AppKey[Auth] = web.AppKey("auth", Auth)
TAIL: web.AppKey[Tail] = web.AppKey("tail", Tail)
FAILED_LOGIN_DELAY_S = 0.5
STATIC = resources.files("band.panel") / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _login_page(config: PanelConfig, message: str = "") -> str:
    fields = []
    if config.user:
        fields.append('<label>User <input name="user" autocomplete="username" required></label>'
                      '<label>Password <input name="password" type="password" autocomplete="current-password" required></label>')
    if config.token:
        fields.append('<label>Token <input name="token" type="password" autocomplete="off" placeholder="paste the token"'
                      + ("" if config.user else " required") + "></label>")
    hint = ("Follow the login link band printed when it started: it carries this panel's token." if config.token_generated
            else "The token is the PANEL_TOKEN this panel was started with; band up prints a link with it." if config.token else "")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        '<title>band panel — log in</title><link rel="stylesheet" href="/static/panel.css"></head>'
        '<body class="login"><form method="post" action="/login" class="card login-card"><h1>band panel</h1>'
        + (f'<p class="bad">{escape(message)}</p>' if message else "")
        + "".join(fields)
        + f'<button type="submit">Log in</button><p class="muted">{escape(hint)}</p></form></body></html>'
    )


async def login_get(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    token = request.query.get("token")
    if token is not None:  # the link band up prints
        wait = auth.throttled(request)
        if wait:
            return _too_many_page(auth, wait)
        if auth.token_ok(token):
            return _logged_in(auth)
        auth.failed(request)
        return web.Response(text=_login_page(auth.config, "that link's token is not this panel's"), content_type="text/html", status=401)
    return web.Response(text=_login_page(auth.config), content_type="text/html")


async def login_post(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    wait = auth.throttled(request)
    if wait:  # checked before the credentials: guessing on cannot find the right one
        return _too_many_page(auth, wait)
    form = await request.post()
    user, password, token = (str(form.get(k, "")) for k in ("user", "password", "token"))
    if (token and auth.token_ok(token)) or (user and auth.password_ok(user, password)):
        return _logged_in(auth)
    auth.failed(request)
    await asyncio.sleep(FAILED_LOGIN_DELAY_S)  # guessing costs time
    return web.Response(text=_login_page(auth.config, "wrong credentials; try again"), content_type="text/html", status=401)


def _too_many_page(auth: Auth, wait: int) -> web.Response:
    message = f"too many failed logins from your address; try again in {wait} s"
    return web.Response(text=_login_page(auth.config, message), content_type="text/html", status=429,
                        headers={"Retry-After": str(wait)})


def _logged_in(auth: Auth) -> web.Response:
    resp = web.Response(status=303, headers={"Location": "/"})
    resp.headers["Set-Cookie"] = auth.cookie_header(auth.sessions.create())
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    auth.sessions.drop(request.cookies.get(COOKIE, ""))
    resp = web.Response(status=303, headers={"Location": "/login"})
    resp.headers["Set-Cookie"] = auth.cookie_header("", 0)
    return resp


async def index(_request: web.Request) -> web.StreamResponse:
    return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html", headers={"Cache-Control": "no-store"})


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    kind = next((t for ext, t in types.items() if name.endswith(ext)), None)
    target = STATIC / name
    if kind is None or "/" in name or not target.is_file():
        raise web.HTTPNotFound()
    return web.Response(body=target.read_bytes(), content_type=kind, headers={"Cache-Control": "no-cache"})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def tail(request: web.Request) -> web.StreamResponse:
    return await request.app[TAIL].handle(request)


async def security_headers(_request: web.Request, resp: web.StreamResponse) -> None:
    """On every answer, errors included: no framing, no sniffing, scripts only from here."""
    resp.headers.update(SECURITY_HEADERS)


def make_app(config: PanelConfig) -> web.Application:
    """The panel's app; NATS is connected on startup (``runner.setup()``)."""
    auth = Auth(config)
    app = web.Application(middlewares=[auth.middleware, api.nats_errors], client_max_size=4 * 1024 * 1024)
    app.on_response_prepare.append(security_headers)
    app[api.CONFIG] = config
    app[AUTH] = auth
    app[api.CONTROL] = ControlClient(config.control_socket)
    r = app.router
    r.add_get("/", index)
    r.add_get("/login", login_get)
    r.add_post("/login", login_post)
    r.add_post("/logout", logout)
    r.add_get("/health", health)
    r.add_get("/static/{name}", static)
    r.add_get("/api/tail", tail)
    api.add_routes(app)
    forget.add_routes(app)  # the User page's forget action
    app.cleanup_ctx.append(_running)
    app.on_shutdown.append(_close_sockets)
    return app


async def _running(app: web.Application) -> AsyncIterator[None]:
    config = app[api.CONFIG]
    nc = await connect(config.nats_url, name="band-panel")
    http = aiohttp.ClientSession()
    app[api.NC] = nc
    try:
        differs = await ensure_dlq_stream(nc.jetstream())
        if differs:
            log.warning("panel: the dead-letter stream %s; the operator applies it with band provision", differs)
    except Exception as exc:  # noqa: BLE001 - no JetStream: the pages say so, the rest works
        log.warning("panel: cannot create the dead-letter stream: %s", exc)
    sampler = app[api.SAMPLER] = Sampler(nc, config, http)
    app[TAIL] = Tail(nc, config.tail_rate)
    task = asyncio.get_running_loop().create_task(sampler.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=1)  # it ends at once (band._runtime.cancel); never a stop that waits on it
        await http.close()
        await close(nc)  # its subscriptions ended with the requests; a lost connection's close is only logged


async def _close_sockets(app: web.Application) -> None:
    """Live-tail sockets get a close frame when the panel stops, instead of holding it."""
    if TAIL in app:
        await app[TAIL].close_all()


@asynccontextmanager
async def running(config: PanelConfig) -> AsyncIterator[str]:
    """The panel listening on ``config.host:port`` until the block ends; yields its base URL."""
    runner = web.AppRunner(make_app(config), access_log=None, shutdown_timeout=5.0)
    try:
        await runner.setup()
        await web.TCPSite(runner, config.host, config.port).start()
        yield f"http://{config.host}:{config.port}"
    finally:
        await runner.cleanup()


async def serve(config: PanelConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM), then shut down in aiohttp's order.

    Shutdown is cancellation (:mod:`band._runtime.signals`): a signal while the panel
    starts (connecting to a NATS that is not there) cancels the start; once it serves,
    a first signal stops it gracefully and a second one cuts that short.
    """
    async with Signals(stop) as signals:
        async with running(config) as base:
            link = f"{base}/login"
            if config.token_generated:
                link += f"?token={quote(config.token)}"
            print(f"band panel on {link}", flush=True)
            with signals.graceful():
                await signals.requested.wait()


def main(args: argparse.Namespace) -> int:
    """``band panel``; returns the exit code."""
    edges = tuple(u.strip() for u in args.edge.split(",") if u.strip()) if args.edge else None
    try:
        config = from_env(os.environ, host=args.host, port=args.port, nats_url=args.nats, edge_urls=edges)
    except (PanelConfigError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        print(f"band panel: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}; pick another with --port", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


__all__ = ["main", "make_app", "running", "serve"]
