"""One person's timeline for the User page: by uid, or by a user id ``identify`` set, asked of
the store over RPC with server-side parameters. ``by="person"`` (the default) gives every device
the identity graph joined to it; ``by="cookie"`` only the uid (or the uids the user id was seen with)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

from .. import wire
from ..runtime import RPC
from .queries import sql

MAX_USER_ID = 200
BY = ("person", "cookie")


def problem(uid: str | None, user_id: str | None, by: str = "person") -> str | None:
    """What is wrong with the request, in words for the operator; None when it can be asked."""
    if by not in BY:
        return f"by must be person or cookie, not {by[:40]!r}"
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


async def timeline(nc: Callable[[], Client], store: str, uid: str | None, user_id: str | None,
                   by: str = "person") -> dict[str, Any]:
    """{"uids": [...], "sessions": n, "counted_by": by, "events": [{uid, dateTime, session, name, page, channel, details}]}."""
    rpc = RPC(nc)

    async def rows(text: str, **params: str) -> list[dict[str, Any]]:
        result = await rpc.request(store, "query", timeout__=30.0, sql=text, params={**params, "by": by})
        return list(result["rows"])

    asked = [uid] if uid else [str(r["uid"]) for r in await rows(sql("uids-of-user"), user_id=user_id or "")]
    events: list[dict[str, Any]] = []
    for one in asked:
        if any(e["uid"] == one for e in events):  # a device of a person already shown
            continue
        events += await rows(sql("user-history"), uid=one)
    events.sort(key=lambda e: str(e["dateTime"]))  # stable: each device's own order stays
    uids = list(dict.fromkeys(str(e["uid"]) for e in events)) or asked
    sessions = len({(e["uid"], e["session"]) for e in events})
    return {"uids": uids, "sessions": sessions, "counted_by": by, "events": events}


__all__ = ["BY", "MAX_USER_ID", "problem", "timeline"]
