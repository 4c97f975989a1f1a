"""One person's history as a timeline, over RPC: ``band call history timeline uid=<uid>``.
Run it with ``band run examples/recipes/history`` beside the dev stack.

Asks the store with the recipe's SQL (examples/recipes/04-*.sql), values as server-side
parameters: by ``uid``, or by ``user_id``; ``by=person`` (the default) gives every device the
identity graph joined to it, ``by=cookie`` only the uid (or the uids the user id was seen with).
"""

from pathlib import Path
from typing import Any

from band import RPCError, expose, store

RECIPES = Path(__file__).resolve().parent.parent  # examples/recipes
TIMELINE = (RECIPES / "04-user-history.sql").read_text()
UIDS = (RECIPES / "04-uids-of-user.sql").read_text()


@expose()
async def timeline(uid: str | None = None, user_id: str | None = None, by: str = "person") -> dict[str, Any]:
    """{"uids": [...], "sessions": n, "counted_by": by, "events": [{uid, dateTime, session, name, page, channel, details}]}."""
    if not uid and not user_id:
        raise RPCError("give uid=<visitor id> or user_id=<your user id>", 400)
    if by not in ("person", "cookie"):
        raise RPCError("by must be person or cookie", 400)
    asked = [str(uid)] if uid else [str(r["uid"]) for r in await store.query(UIDS, user_id=user_id, by=by)]
    events: list[dict[str, Any]] = []
    for one in asked:
        if any(e["uid"] == one for e in events):  # a device of a person already shown
            continue
        events += await store.query(TIMELINE, uid=one, by=by)
    events.sort(key=lambda e: e["dateTime"])  # stable: each device's own order stays
    uids = list(dict.fromkeys(e["uid"] for e in events)) or asked
    sessions = len({(e["uid"], e["session"]) for e in events})
    return {"uids": uids, "sessions": sessions, "counted_by": by, "events": events}
