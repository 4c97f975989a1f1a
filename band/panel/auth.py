"""Who may use the panel: a token, basic-auth credentials or a session from the login page.

Every comparison of a secret is constant-time (``hmac.compare_digest``), and every wrong
one counts against the client's address (:mod:`.throttle`): the login form, the login
link and an ``Authorization`` header alike. A state-changing
request (anything but GET/HEAD) must also come from the panel's own origin: a browser
sends ``Origin`` (or ``Sec-Fetch-Site``) on every such request, so another site's page
cannot make a logged-in browser restart a service. Clients that are not browsers (curl,
a PHP backend) send neither and authenticate with a header a browser never adds by itself.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from .config import PanelConfig
from .throttle import LoginThrottle

COOKIE = "band_panel"
PUBLIC = frozenset({"/login", "/health", "/static/panel.css"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Sessions:
    """Sessions of logged-in browsers, in memory: a restart logs everyone out."""

    ttl_s: float
    _expires: dict[str, float] = field(default_factory=dict)

    def create(self) -> str:
        now = time.monotonic()
        for sid, expires in list(self._expires.items()):
            if expires < now:
                del self._expires[sid]
        sid = secrets.token_urlsafe(32)
        self._expires[sid] = now + self.ttl_s
        return sid

    def valid(self, sid: str) -> bool:
        expires = self._expires.get(sid)
        return expires is not None and expires >= time.monotonic()

    def drop(self, sid: str) -> None:
        self._expires.pop(sid, None)


class Auth:
    """Checks credentials and origins for one panel."""

    def __init__(self, config: PanelConfig) -> None:
        self.config = config
        self.sessions = Sessions(config.session_ttl_s)
        self.throttle = LoginThrottle(config.login_burst, config.login_refill_s)

    def throttled(self, request: web.Request) -> int:
        """Seconds this client must wait before its credentials are checked again (0: none)."""
        return self.throttle.retry_after(request.remote)

    def failed(self, request: web.Request) -> None:
        """This client offered a wrong credential."""
        self.throttle.failed(request.remote)

    def token_ok(self, token: str) -> bool:
        return bool(self.config.token) and _same(token, self.config.token)

    def password_ok(self, user: str, password: str) -> bool:
        if not (self.config.user and self.config.password):
            return False
        # both compared every time: the answer's timing says nothing about which was wrong
        return _same(user, self.config.user) & _same(password, self.config.password)

    def header_identity(self, request: web.Request) -> str | None:
        """``"bearer"`` or ``"basic"`` when the Authorization header holds good credentials."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token_ok(value.strip()):
            return "bearer"
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            if self.password_ok(user, password) or (not user and self.token_ok(password)):
                return "basic"
        return None

    def session_ok(self, request: web.Request) -> bool:
        sid = request.cookies.get(COOKIE, "")
        return bool(sid) and self.sessions.valid(sid)

    @staticmethod
    def same_origin(request: web.Request, header_auth: bool) -> bool:
        """True when the request comes from the panel's own pages (or from no browser at all)."""
        own = f"{request.scheme}://{request.host}"
        origin = request.headers.get("Origin")
        if origin is not None:
            return origin != "null" and _same(origin, own)
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site in ("same-origin", "none")
        referer = request.headers.get("Referer")
        if referer:
            parts = urlsplit(referer)
            return _same(f"{parts.scheme}://{parts.netloc}", own)
        # no browser told us where it came from: only a client that authenticated
        # with its own Authorization header (curl, a backend) is trusted without it
        return header_auth

    def cookie_header(self, sid: str, max_age: int | None = None) -> str:
        age = int(self.config.session_ttl_s) if max_age is None else max_age
        cookie = f"{COOKIE}={sid}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict"
        return cookie + "; Secure" if self.config.cookie_secure else cookie

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC:
            if request.method not in SAFE_METHODS and not self.same_origin(request, False):
                return _refuse(request, 403, "cross-origin request refused: use the panel's own page")
            return await handler(request)
        header: str | None = None
        if "Authorization" in request.headers:  # a credential offered: rate-limited like a login
            wait = self.throttled(request)
            if wait:
                return too_many(request, wait)
            header = self.header_identity(request)
            if header is None:
                self.failed(request)
        if header is None and not self.session_ok(request):
            if request.path.startswith("/api/") or request.method not in SAFE_METHODS:
                return _refuse(request, 401, "authentication required: log in at /login, or send 'Authorization: Bearer <PANEL_TOKEN>'")
            raise web.HTTPFound("/login")
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if (request.method not in SAFE_METHODS or upgrade) and not self.same_origin(request, header is not None):
            return _refuse(request, 403, "cross-origin request refused: the panel only accepts changes from its own page")
        return await handler(request)


def too_many(request: web.Request, wait: int) -> web.Response:
    """429 for a client that failed to log in too often; ``Retry-After`` says how long to wait."""
    resp = _refuse(request, 429, f"too many failed logins from your address; try again in {wait} s")
    resp.headers["Retry-After"] = str(wait)
    return resp


def _refuse(request: web.Request, status: int, message: str) -> web.Response:
    resp = web.json_response({"error": message}, status=status)
    if status == 401 and request.path.startswith("/api/"):
        resp.headers["WWW-Authenticate"] = 'Bearer realm="band panel"'
    return resp


__all__ = ["COOKIE", "Auth", "Sessions", "too_many"]
