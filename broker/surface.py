"""Front's small fixed paths: ``/lib.js``, ``/favicon.ico`` and ``/coffee``."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from .config import EdgeConfig
from .consent import SET, Consent
from .hit import pick_uid
from .libjs import CONTENT_TYPE, LibJs, accepts_gzip
from .request import cookies_of


@cache
def _favicon() -> bytes:
    return (resources.files("broker") / "static" / "favicon.ico").read_bytes()


def favicon() -> web.Response:
    return web.Response(body=_favicon(), headers={"Content-Type": "image/x-icon"})


def coffee(config: EdgeConfig) -> web.Response:
    """``/coffee``: 418 with the edge's name, front's liveness joke kept for its users' checks."""
    return web.Response(status=418, text="I'm a teapot", headers={"X-My-Name": config.name})


def lib_js(request: web.Request, lib: LibJs, config: EdgeConfig, consent: Consent | None = None) -> tuple[web.Response, str, str]:
    """The SDK with the visitor's uid configured in; the uid and the cookie action.

    A returning visitor's cookie uid is the one handed to the page (``?uid=`` first, as
    front read it); a first visit gets a new one, the same in the prefix and the cookie.
    Without consent (:mod:`broker.consent`) the page gets no uid and no cookie.
    """
    cookie, choice = cookies_of(request, config)
    action = SET
    if consent is not None:
        decision = consent.decide(request.headers, None, choice, cookie is not None)
        action = decision.cookie
        if not decision.granted:
            return _lib_answer(request, lib, ""), "", action
    uid = pick_uid(request.query.get("uid"), cookie)
    return _lib_answer(request, lib, uid), uid, action


def _lib_answer(request: web.Request, lib: LibJs, uid: str) -> web.Response:
    etag = lib.etag(uid)
    headers = {"Content-Type": CONTENT_TYPE, "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if accepts_gzip(request.headers.get("Accept-Encoding", "")):
        return web.Response(body=lib.gzip(uid), headers={**headers, "Content-Encoding": "gzip"})
    return web.Response(body=lib.body(uid), headers=headers)


def keep_privately(resp: web.StreamResponse, lib: LibJs) -> None:
    """/lib.js's caching, over the no-cache every other answer carries: only the visitor's
    own browser keeps it (it holds their uid), and asks again when its cookie changed."""
    resp.headers["Cache-Control"] = f"private, max-age={lib.max_age_s}"
    resp.headers.popall("Pragma", None)
    resp.headers.popall("Expires", None)
    vary = resp.headers.get("Vary")
    resp.headers["Vary"] = f"Cookie, Accept-Encoding{', ' + vary if vary else ''}"


__all__ = ["coffee", "favicon", "keep_privately", "lib_js"]
