"""Events stored, failed and flagged per minute and key, counted in the store's tables.

Counted from the rows themselves, not kept in memory: the numbers survive restarts and
are exactly what a query sees. The minute is the event's (``dateTime``, the edge's hit
time), the key ``<service>/<name>``; ``bad_rows`` counts under the key ``bad_rows``.
Flagged counts rows with a non-empty ``bot`` column, in tables that have one (0 where
none does).
"""

from __future__ import annotations

from typing import Any

from .backend import Backend
from .config import BAD_ROWS, StoreConfig
from .schema import quote

BOT = "bot"


def minute_counts(backend: Backend, config: StoreConfig, minutes: int) -> list[dict[str, Any]]:
    """``[{"minute": unix seconds, "key", "stored", "flagged"}]`` for the last ``minutes``
    whole minutes (this one included), oldest first. Blocking: run it in the engine's reading thread."""
    parts = []
    for name in sorted(config.routed_tables()):
        columns = config.tables[name].columns
        if "dateTime" not in columns:
            continue
        if name == BAD_ROWS:
            key = f"'{BAD_ROWS}'"
        elif "service" in columns and "name" in columns:
            key = "concat(toString(service), '/', toString(name))"
        else:
            key = f"'{name}'"
        flagged = f"toUInt64({quote(BOT)} != '')" if BOT in columns else "toUInt64(0)"
        # the date first: it is in the partition key, so older parts are not read
        since = "date >= toDate(now() - toIntervalMinute({minutes:UInt32})) AND" if "date" in columns else ""
        parts.append(f"SELECT toUnixTimestamp(toStartOfMinute(dateTime)) AS minute, {key} AS key, {flagged} AS flagged "
                     f"FROM {quote(config.database)}.{quote(name)} "
                     f"WHERE {since} dateTime >= toStartOfMinute(now()) - toIntervalMinute({{minutes:UInt32}} - 1)")
    if not parts:
        return []
    sql = (f"SELECT minute, key, count() AS stored, sum(flagged) AS flagged FROM ({' UNION ALL '.join(parts)}) "
           f"GROUP BY minute, key ORDER BY minute, key")
    rows = backend.select(sql, {"minutes": minutes})["rows"]
    return [{"minute": int(r["minute"]), "key": str(r["key"]), "stored": int(r["stored"]), "flagged": int(r["flagged"])}
            for r in rows]


__all__ = ["minute_counts"]
