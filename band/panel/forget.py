"""The User page's "Forget this person" action: ``POST /api/forget`` with the person id the
page shows (or a uid or user id) and the same value again as ``confirm`` (what the page's
confirmation asks the operator to type), answered with the store's report (docs/privacy.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import RPCError, ServiceUnavailable
from ..runtime import RPC
from . import api, history

WAIT_S = 15.0  # each forget call answers within this, running or done; the page waits for the report
CALL_TIMEOUT_S = 30.0


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def forget(request: web.Request) -> web.Response:
    try:
        body: Any = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body is not JSON")
    if not isinstance(body, dict):
        return _error(400, 'the body is an object: {"person": ..., "confirm": ...}, or uid or user_id instead of person')
    uid, user_id, person = body.get("uid"), body.get("user_id"), body.get("person")
    if not all(v is None or isinstance(v, str) for v in (uid, user_id, person)):
        return _error(400, "person, uid and user_id are strings")
    if person is not None:
        if uid is not None or user_id is not None:
            return _error(400, "give person, uid or user_id: one of them")
        if not person.isdigit() or len(person) > 20:
            return _error(400, f"person must be a person id (digits, as the User page shows it), not {person[:40]!r}")
    elif wrong := history.problem(uid, user_id):
        return _error(400, wrong)
    if body.get("confirm") != (person or uid or user_id):
        return _error(400, "not confirmed: send the same person id, uid or user id again as confirm")
    config = request.app[api.CONFIG]
    try:
        report = await _forget(RPC(lambda: request.app[api.NC]), config.store_service, uid, user_id, person)
    except ServiceUnavailable:
        return _error(503, f"no '{config.store_service}' service is running: start the store")
    except RPCError as exc:
        return _error(exc.code if 400 <= exc.code < 600 else 502, exc.message)
    return web.json_response(report)


async def _forget(rpc: RPC, store: str, uid: str | None, user_id: str | None, person: str | None) -> Any:
    """The store's ``forget``, called again while it runs (each call answers within its ``wait``)."""
    while True:
        report = await rpc.request(store, "forget", timeout__=CALL_TIMEOUT_S, uid=uid, user_id=user_id, person=person, by="panel",
                                   wait=WAIT_S)
        if not report.get("running"):
            return report


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/forget", forget)


__all__ = ["CALL_TIMEOUT_S", "WAIT_S", "add_routes", "forget"]
