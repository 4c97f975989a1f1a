"""Visitor segments on a schedule: the store's numbers in, Redis ``s:<uid>`` out.

Every ``interval_s`` the worker streams 10-segments.sql's rows (``store.stream``, counted ``by``
person or cookie as configured) and writes each visitor's ``segment``, ``rfm`` and ``revenue`` into the hash ``s:<uid>`` (values as JSON, as
the edge's ``stored`` enricher reads them: every later hit carries ``data.stored``). A
visitor whose segment changed also gets ``{"segment": new, "previous": old}`` on their open
WebSockets. ``/segments/offer`` answers a redirect chosen by the visitor's segment.
Run it with ``band run examples/recipes/segments`` beside the dev stack.
"""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from band import RPCError, expose, logger, redis_factory, response, rpc, settings, worker

SQL = (Path(__file__).resolve().parent.parent / "10-segments.sql").read_text()
FIELDS = ("segment", "rfm", "revenue")
BATCH = 2_000  # visitors per Redis round trip: a pass holds one batch, whatever the visitor count


def key(uid: str) -> str:
    return f"s:{uid}"


async def compute(redis: Any) -> dict[str, int]:
    """One pass: every visitor's segment into Redis; the changed ones pushed. Counts.

    The rows stream from the store (``store.stream``) and go to Redis ``BATCH`` at a time,
    so a pass over any number of visitors holds one batch."""
    from band import store

    counts = {"visitors": 0, "changed": 0}
    batch: list[dict[str, Any]] = []
    async for row in store.stream(SQL, timeout__=60.0, by=str(settings.by)):
        batch.append(row)
        if len(batch) >= BATCH:
            await write(redis, batch, counts)
            batch = []
    await write(redis, batch, counts)
    return counts


async def write(redis: Any, rows: list[dict[str, Any]], counts: dict[str, int]) -> None:
    """A batch of visitors' segments into Redis; those whose segment changed get a push."""
    pipe = redis.pipeline()
    for row in rows:
        pipe.hget(key(row["uid"]), "segment")
    before = await pipe.execute()
    pipe = redis.pipeline()
    pushes = []
    for row, old in zip(rows, before, strict=True):
        previous = json.loads(old) if old is not None else None
        pipe.hset(key(row["uid"]), mapping={f: json.dumps(row[f]) for f in FIELDS})
        if previous != row["segment"]:
            pushes.append((row["uid"], {"segment": row["segment"], "previous": previous}))
    await pipe.execute()
    for uid, body in pushes:
        await rpc.push(uid, body)
    counts["visitors"] += len(rows)
    counts["changed"] += len(pushes)


class state:
    redis: Any = None


def redis() -> Any:
    """One client for the worker and the handler, closed by the service at stop."""
    if state.redis is None:
        state.redis = redis_factory(settings.redis_url)
    return state.redis


@worker()
async def segments() -> None:
    while True:
        started = time.monotonic()
        try:
            counts = await compute(redis())
            logger.info("segments: computed", seconds=round(time.monotonic() - started, 2), **counts)
        except asyncio.CancelledError:
            raise
        except RPCError as exc:  # the store is not up yet, or refused the query
            logger.warning("segments: store query failed; next pass retries", error=str(exc))
        except Exception:
            logger.exception("segments: pass failed; next pass retries")
        await asyncio.sleep(float(settings.interval_s))


@expose.handler()
async def offer(uid: str, data: dict[str, Any] | None = None, **params: Any) -> Any:
    """A redirect by segment: ``data.stored`` when the edge's stored enricher filled it, else Redis."""
    stored = (data or {}).get("stored") or {}
    segment = stored.get("segment")
    if segment is None:
        raw = await redis().hget(key(uid), "segment")
        segment = json.loads(raw) if raw else None
    offers = settings.offers.to_dict()
    return response.redirect(offers.get(segment or "", offers["default"]))
