"""The edge's own answers when no service handles a key: pixel, redir, track, a plain ack."""

from __future__ import annotations

from typing import Any

from band.response import DataResponse, ErrorResponse, PixelResponse, RedirectResponse, Response

from .redirects import redirect_problem


def built_in_answer(message: dict[str, Any], image: bool, redirect_hosts: tuple[str, ...]) -> Response:
    """``/pixel/*`` a GIF, ``/redir/*?to=`` a checked 302, an image request a GIF, else the ids."""
    service = message["service"]
    if service == "pixel":
        return PixelResponse()
    if service == "redir":
        to = message["data"].get("to")
        problem = redirect_problem(to, redirect_hosts)
        if problem is not None:
            return ErrorResponse(message=problem, statusCode=400)
        return RedirectResponse(location=to, statusCode=302)
    if image:
        return PixelResponse()
    if service == "track":
        return DataResponse(data={"id": message["id"]})
    return DataResponse(data={"key": message["key"], "id": message["id"]})


__all__ = ["built_in_answer"]
