"""One visitor's timeline for the User page: by uid, or by a user id ``identify`` set (every
uid it was seen with), asked of the store over RPC with server-side parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

from .. import wire
from ..runtime import RPC
from .queries import sql

MAX_USER_ID = 200


def problem(uid: str | None, user_id: str | None) -> str | None:
    """What is wrong with the request, in words for the operator; None when it can be asked."""
    if uid is None and user_id is None:
        return "give uid=<visitor id> or user_id=<your user id>"
    if uid is not None and user_id is not None:
        return "give uid or user_id, not both"
    if uid is not None and not wire.UID_RE.match(uid):
        return f"uid must be 10 to 22 digits (the visitor id in the events), not {uid[:40]!r}"
    if user_id is not None and not user_id.strip():
        return "user_id is empty: give the id your site passed to identify"
    if user_id is not None and len(user_id) > MAX_USER_ID:
        return f"user_id is longer than {MAX_USER_ID} characters"
    return None


async def timeline(nc: Callable[[], Client], store: str, uid: str | None, user_id: str | None) -> dict[str, Any]:
    """{"uids": [...], "sessions": n, "events": [{uid, dateTime, session, name, page, channel, details}]}."""
    rpc = RPC(nc)

    async def rows(text: str, **params: str) -> list[dict[str, Any]]:
        result = await rpc.request(store, "query", timeout__=30.0, sql=text, params=params)
        return list(result["rows"])

    uids = [uid] if uid else [str(r["uid"]) for r in await rows(sql("uids-of-user"), user_id=user_id or "")]
    events: list[dict[str, Any]] = []
    sessions = 0
    for one in uids:
        mine = await rows(sql("user-history"), uid=one)
        sessions += len({r["session"] for r in mine})
        events += [{"uid": one, **r} for r in mine]
    return {"uids": uids, "sessions": sessions, "events": events}


__all__ = ["MAX_USER_ID", "problem", "timeline"]
