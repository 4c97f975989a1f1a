"""Typed band responses as HTTP answers: one small renderer per kind.

The native form (a ``band`` path segment, and every WebSocket answer) is the whole
typed response as JSON, which is what the Rockstat web SDK reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from band import wire
from band.response import PIXEL_GIF, DataResponse, ErrorResponse, PixelResponse, RedirectResponse, Response

from .hit import http_status

JSON = "application/json"
# Content-Type given as a header, not content_type=: aiohttp then skips parsing it per answer.
_JSON_TYPE = {"Content-Type": "application/json; charset=utf-8"}
_GIF_TYPE = {"Content-Type": "image/gif"}
_TEXT_TYPE = {"Content-Type": "text/plain; charset=utf-8"}


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=wire.encode(value), status=status, headers=_JSON_TYPE)


def render_pixel(resp: PixelResponse) -> web.Response:
    return web.Response(body=PIXEL_GIF, status=http_status(resp, False), headers=_GIF_TYPE)


def render_redirect(resp: RedirectResponse) -> web.Response:
    return web.Response(status=resp.statusCode, headers={"Location": resp.location})


def render_error(resp: ErrorResponse) -> web.Response:
    return json_response({"message": resp.message}, resp.statusCode)


def render_data(resp: DataResponse) -> web.Response:
    if isinstance(resp.data, str):
        return web.Response(body=resp.data.encode(), status=resp.statusCode, headers=_TEXT_TYPE)
    return json_response(resp.data, resp.statusCode)


def render_native(resp: Response) -> web.Response:
    """The typed response as JSON; a redirect answers 200 so the SDK can follow it itself."""
    return json_response(resp.to_wire(), http_status(resp, True))


_RENDERERS: dict[type, Callable[[Any], web.Response]] = {
    PixelResponse: render_pixel,
    RedirectResponse: render_redirect,
    ErrorResponse: render_error,
    DataResponse: render_data,
}


def render(resp: Response, native: bool = False) -> web.Response:
    if native:
        return render_native(resp)
    return _RENDERERS[type(resp)](resp)


__all__ = ["json_response", "render", "render_data", "render_error", "render_native", "render_pixel", "render_redirect"]
