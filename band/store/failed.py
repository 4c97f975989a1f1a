"""``band store replay-failed``: failed events checked against today's schemas, those that pass stored.

An event a schema refused in ``enforce`` mode sits in ``failed_events`` whole. After the
sender or the schema is fixed, each one (of a key or prefix, since a time) is checked
again against the schemas as they are now: one that passes becomes a row of its table
with its own id and stream sequence, exactly once (its id is looked up in that table
first, as the writer does, and the look-up and the insert hold the writer's lock), and
is then deleted from ``failed_events`` with a lightweight ``DELETE``, so ``band store
check`` finds it in exactly one table. One that still fails stays. Run twice, it does
nothing new; stopped between the insert and the delete, the next run finds the row
stored and only deletes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .. import wire
from ..schemas import Schemas
from .config import BAD_ROWS, FAILED_EVENTS
from .rows import BadRow, RowBuilder
from .schema import quote
from .writer import Engine

BATCH = 5000  # failed events read, checked and stored at a time


@dataclass
class Outcome:
    """What a replay of failed events did."""

    checked: int = 0
    stored: int = 0  # now rows of their tables
    already: int = 0  # found stored by an earlier run: only removed from failed_events
    bad_rows: int = 0  # passed, but could not be a row (kept in bad_rows, as the writer does)
    failing: int = 0  # fail today's schema still: left in failed_events
    errors: Counter[str] = field(default_factory=Counter)  # "<key> <path>: <rule>" of those left

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "stored": self.stored, "already": self.already, "bad_rows": self.bad_rows,
                "failing": self.failing, "errors": dict(self.errors.most_common(20))}


def _select(database: str, key: str | None, since: dt.datetime | None, after: int) -> tuple[str, dict[str, Any]]:
    where = ["id > {after:UInt64}"]
    params: dict[str, Any] = {"after": after}
    if key:
        where.append("(key = {key:String} OR startsWith(key, {prefix:String}))")
        params.update(key=key, prefix=key + ".")
    if since is not None:
        where.append("dateTime >= {since:UInt32}")
        params["since"] = int(since.timestamp())
    return (f"SELECT id, stream_seq, timestamp, message FROM {quote(database)}.{quote(FAILED_EVENTS)} "
            f"WHERE {' AND '.join(where)} ORDER BY id LIMIT {BATCH}"), params


async def replay_failed(engine: Engine, builder: RowBuilder, schemas: Schemas,
                        key: str | None = None, since: dt.datetime | None = None) -> Outcome:
    """Check the failed events (of ``key`` or its prefix, since ``since``) against
    ``schemas``; store those that pass, exactly once, and delete them from ``failed_events``."""
    outcome = Outcome()
    after = 0
    while True:
        sql, params = _select(engine.database, key, since, after)
        rows = (await engine.call(engine.backend.select, sql, params, read=True))["rows"]
        if not rows:
            return outcome
        after = int(rows[-1]["id"])
        await _batch(engine, builder, schemas, rows, outcome)


async def _batch(engine: Engine, builder: RowBuilder, schemas: Schemas, rows: list[dict[str, Any]], outcome: Outcome) -> None:
    passed: dict[str, list[tuple[int, bytes]]] = {}
    for row in rows:
        outcome.checked += 1
        event_id, seq, ms = int(row["id"]), int(row["stream_seq"]), int(row["timestamp"])
        message = json.loads(row["message"])
        message.pop(wire.SCHEMA_ERRORS_FIELD, None)
        schema = schemas.for_key(str(message.get("key") or ""))
        errors = schema.errors(message) if schema is not None else []
        if errors:
            outcome.failing += 1
            for error in errors:
                outcome.errors[f"{message.get('key')} {error['path']}: {error['rule']}"] += 1
            continue
        try:
            table, _, _, values = builder.line(message, event_id, ms, seq)
            encoded = builder.encode(table, values)
        except BadRow as exc:
            table, bad = builder.bad_row(message, builder.route(message.get("service"), message.get("name")),
                                         str(exc), event_id, ms, seq)
            encoded = builder.encode(table, bad)
            outcome.bad_rows += 1
        passed.setdefault(table, []).append((event_id, encoded))
    moved: list[int] = []
    async with engine.lock:  # the writer's: its look-ups and ours never race
        for table, items in passed.items():
            found = await engine.existing(table, [event_id for event_id, _ in items])
            fresh = [encoded for event_id, encoded in items if event_id not in found]
            if fresh:
                await engine.insert_encoded(table, builder.form(table), fresh)
            outcome.already += len(items) - len(fresh)
            outcome.stored += len(fresh) if table != BAD_ROWS else 0
            moved.extend(event_id for event_id, _ in items)
        if moved:
            ids = ", ".join(str(i) for i in moved)  # integers from the table itself
            await engine.call(engine.backend.command,
                              f"DELETE FROM {quote(engine.database)}.{quote(FAILED_EVENTS)} WHERE id IN ({ids})")


__all__ = ["BATCH", "Outcome", "replay_failed"]
