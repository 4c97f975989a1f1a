"""One user's history as a timeline, over RPC: ``band call history timeline uid=<uid>``.
Run it with ``band run examples/recipes/history`` beside the dev stack.

Asks the store with the recipe's SQL (examples/recipes/04-*.sql), values as server-side
parameters: by ``uid``, or by ``user_id`` (every visitor the id was seen with).
"""

from pathlib import Path
from typing import Any

from band import RPCError, expose, store

RECIPES = Path(__file__).resolve().parent.parent  # examples/recipes
TIMELINE = (RECIPES / "04-user-history.sql").read_text()
UIDS = (RECIPES / "04-uids-of-user.sql").read_text()


@expose()
async def timeline(uid: str | None = None, user_id: str | None = None) -> dict[str, Any]:
    """{"uids": [...], "sessions": n, "events": [{dateTime, session, name, page, channel, details}]}."""
    if not uid and not user_id:
        raise RPCError("give uid=<visitor id> or user_id=<your user id>", 400)
    uids = [str(uid)] if uid else [str(r["uid"]) for r in await store.query(UIDS, user_id=user_id)]
    events: list[dict[str, Any]] = []
    sessions = 0
    for one in uids:
        rows = await store.query(TIMELINE, uid=one)
        sessions += len({r["session"] for r in rows})
        events += [{"uid": one, **r} for r in rows]
    return {"uids": uids, "sessions": sessions, "events": events}
