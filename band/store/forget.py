"""Forget a person: every row, stream message, dead letter and Redis segment of theirs
deleted, a tombstone kept so nothing of theirs is stored again, and a report.

In this order, so it is safe while events flow in:

1. find every identifier of the person (:mod:`.person`);
2. record their tombstones (:mod:`.tombstones`): from the next batch on, the writer
   drops their events;
3. take the writer's lock once: a batch being written when the tombstones landed is
   now in ClickHouse (and is deleted below), every later one was sifted; the high-water
   mark read there splits the stream into stored and not yet stored;
4. per table, count their rows and collect their stream sequences, then ``DELETE``
   (lightweight, waited for); the identity graph the writer holds is loaded again
   without them;
5. delete those sequences from the stream, then scan what lies above the mark (not
   yet stored) and the dead letters, deleting theirs;
6. delete their Redis ``s:<uid>`` hashes (when the store has a Redis URL);
7. write an audit row without personal data (``privacy_log``: tombstone hashes, counts,
   who, when) and log the same line.

Run twice, the second run finds nothing and reports zeros.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client

from .. import wire
from .._core.log import Logger
from . import erase
from .backend import Backend
from .config import IDENTITY_TABLES
from .identity import Identities
from .person import Person, read, resolve, wheres
from .schema import quote
from .tombstones import AUDIT, Tombstones, identifiers_of, kinds_of
from .writer import Engine

DELETE_SETTINGS = "SETTINGS mutations_sync = 2"  # return once the rows are gone


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds")


def _rows(backend: Backend, database: str, found: dict[str, tuple[str, bool]]) -> dict[str, tuple[int, list[int]]]:
    """table → (rows of the person, their stream sequences). Blocking."""
    out = {}
    for table, (condition, has_seq) in found.items():
        seqs = "groupArray(stream_seq)" if has_seq else "[]"
        row = read(backend, f"SELECT count() AS n, {seqs} AS s FROM {quote(database)}.{quote(table)} "
                             f"WHERE {condition}")["rows"][0]
        out[table] = (int(row["n"]), [int(s) for s in row["s"] if int(s)])
    return out


def _delete(backend: Backend, database: str, found: dict[str, tuple[str, bool]], counts: Mapping[str, int]) -> None:
    """Delete the person's rows, table by table, waiting for each. Blocking."""
    for table, (condition, _) in found.items():
        if counts.get(table):
            backend.command(f"DELETE FROM {quote(database)}.{quote(table)} WHERE {condition} {DELETE_SETTINGS}")


class Forgetting:
    """Forget and find people in one store: its engine, tombstones and NATS connection."""

    def __init__(self, engine: Engine, tombstones: Tombstones, nc: Client, redis_url: str, logger: Logger,
                 secure: bool = False, identities: Identities | None = None) -> None:
        self.engine = engine
        self.identities = identities  # the graph the writer holds in memory: loaded again without them
        self.secure = secure  # JetStream overwrites deleted messages on disk (erase.delete; forget_erase)
        self.tombstones = tombstones
        self.nc = nc
        self.redis_url = redis_url
        self.log = logger

    async def person(self, given: str | None, person_id: int) -> Person:
        engine = self.engine
        found: Person = await engine.call(resolve, engine.backend, engine.database, given, person_id, read=True)
        return found

    async def selects(self, given: str | None, person_id: int) -> dict[str, Any]:
        """What ``band privacy export`` reads: the person's identifiers and, per table, the
        ``SELECT`` of their rows."""
        engine = self.engine
        person = await self.person(given, person_id)
        found = await engine.call(wheres, engine.backend, engine.database, person, read=True)
        db = quote(engine.database)
        return {"person_id": person.person_id, "identifiers": sorted(person.identifiers),
                "selects": {t: f"SELECT * FROM {db}.{quote(t)} WHERE {c}" for t, (c, _) in found.items()}}

    async def forget(self, given: str | None, person_id: int, by: str) -> dict[str, Any]:
        """Forget the person; the report (see the module's docstring)."""
        started, clock = time.time(), time.monotonic()
        engine, db = self.engine, self.engine.database
        person = await self.person(given, person_id)
        steps = {"find": time.monotonic() - clock}
        hashes = kinds_of(self.tombstones, person.identifiers)
        new = await engine.call(self.tombstones.add, engine.backend, db, hashes)
        async with engine.lock:  # every batch from here on is sifted; the one in flight has landed
            mark = engine.mark.seq
        js = self.nc.jetstream()
        events = await erase.bounds(js, wire.STREAM)
        found = await engine.call(wheres, engine.backend, db, person, read=True)
        rows = await engine.call(_rows, engine.backend, db, found, read=True)
        counts = {t: n for t, (n, _) in rows.items()}
        steps["count"] = time.monotonic() - clock - sum(steps.values())
        await engine.call(_delete, engine.backend, db, found, counts)
        if self.identities is not None and any(counts.get(t) for t in IDENTITY_TABLES):
            async with engine.lock:  # between batches: the next one resolves through the graph without them
                await engine.call(self.identities.load, engine.backend)
        steps["delete"] = time.monotonic() - clock - sum(steps.values())
        stored_seqs = {s for _, seqs in rows.values() for s in seqs} | person.seqs
        mine = set(hashes)

        def theirs(message: dict[str, Any]) -> bool:
            return any(self.tombstones.hash(i) in mine for i in identifiers_of(message))

        stream = await erase.delete(self.nc, wire.STREAM, stored_seqs, self.secure)
        unstored = 0
        if events is not None and events[1] > mark:
            tail = await erase.scan(js, wire.STREAM, mark + 1, events[1], theirs)
            unstored = await erase.delete(self.nc, wire.STREAM, tail, self.secure)
        dead = 0
        letters = await erase.bounds(js, wire.DLQ_STREAM)
        if letters is not None and letters[1]:
            dead = await erase.delete(self.nc, wire.DLQ_STREAM, await erase.scan(js, wire.DLQ_STREAM, *letters, theirs),
                                      self.secure)
        steps["stream"] = time.monotonic() - clock - sum(steps.values())
        redis = await self._redis(person)
        finished = time.time()
        report = {"tombstones": len(new), "identifiers": len(person.identifiers),
                  "rows": {t: n for t, n in counts.items() if n}, "rows_total": sum(counts.values()),
                  "stream": stream + unstored, "stream_stored": stream, "stream_unstored": unstored,
                  "dead_letters": dead, "redis": redis, "started": _iso(started), "finished": _iso(finished),
                  "seconds": round(time.monotonic() - clock, 3), "steps": {k: round(v, 3) for k, v in steps.items()}}
        await engine.call(self._audit, sorted(hashes), report, by)
        self.log.info("store: a person was forgotten", by=by, tombstones=",".join(sorted(hashes)),
                      rows=report["rows_total"], stream=report["stream"], dead_letters=dead, redis=redis,
                      seconds=report["seconds"])
        return {**report, "hashes": sorted(hashes)}

    def _audit(self, hashes: list[str], report: Mapping[str, Any], by: str) -> None:
        counts = {k: report[k] for k in ("tombstones", "rows", "stream", "dead_letters", "redis")}
        row = {"at": time.time(), "action": "forget", "by": by, "tombstones": hashes,
               "counts": json.dumps(counts, sort_keys=True), "seconds": report["seconds"]}
        self.engine.backend.insert(self.engine.database, AUDIT, wire.encode(row), "JSONEachRow", ())

    async def _redis(self, person: Person) -> int | None:
        """Their ``s:<uid>`` hashes deleted; ``None`` when the store has no Redis URL."""
        if not self.redis_url or not person.uids:
            return None
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.redis_url)
        try:
            return int(await client.delete(*[f"s:{u}" for u in sorted(person.uids)]))
        finally:
            await client.aclose()


__all__ = [
    "DELETE_SETTINGS",
    "Forgetting",
]
