"""Events per name over the last 24 hours in 15-minute buckets: from the store, else the stream.

The store counts every event it holds (one SQL query). Without a store the panel reads
the events stream's last 24 hours headers-only (subject and time, no bodies), at most
``limit`` events, the most recent ones, and says when it had to stop short.
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from .. import wire
from ..errors import RPCError
from ..runtime import RPC, raise_if_cancelling

BUCKET_S = 15 * 60
WINDOW_S = 24 * 3600
TABLES = ("events", "activity", "ping", "webhooks")  # where the store routes events (Rockstat's defaults)


def store_sql(bots: bool = False) -> str:
    """Events per 15 minutes and name; without ``bots``, the events the edge flagged are left out."""
    people = "" if bots else " AND bot = ''"
    return (
        "SELECT bucket, key_name AS name, count() AS events FROM ("
        + " UNION ALL ".join(
            "SELECT toUnixTimestamp(toStartOfFifteenMinutes(dateTime)) AS bucket, concat(service, '.', name) AS key_name "
            f"FROM stats.{table} WHERE dateTime >= now() - INTERVAL 1 DAY{people}"
            for table in TABLES
        )
        + ") GROUP BY bucket, key_name ORDER BY bucket, key_name"
    )


STORE_SQL = store_sql()


def buckets(now: float) -> list[float]:
    """The 96 bucket starts of the last 24 hours, oldest first, the current one last."""
    last = now - now % BUCKET_S
    return [last - BUCKET_S * i for i in range(WINDOW_S // BUCKET_S - 1, -1, -1)]


def _table(starts: list[float], counts: dict[str, dict[float, float]], top: int = 9) -> dict[str, list[float]]:
    """One series per name, the ``top`` busiest by name and the rest summed as ``other``."""
    names = sorted(counts, key=lambda n: -sum(counts[n].values()))
    series = {name: [counts[name].get(b, 0.0) for b in starts] for name in names[:top]}
    if len(names) > top:
        series["other"] = [sum(counts[n].get(b, 0.0) for n in names[top:]) for b in starts]
    return series


async def from_store(nc: Client, service: str, timeout_s: float = 10.0, bots: bool = False) -> dict[str, Any]:
    rows = await RPC(lambda: nc).request(service, "query", timeout__=timeout_s, sql=store_sql(bots))
    starts = buckets(time.time())
    counts: dict[str, dict[float, float]] = {}
    for row in (rows or {}).get("rows", []):
        bucket = float(row["bucket"])
        counts.setdefault(str(row["name"]), {})[bucket] = counts.get(str(row["name"]), {}).get(bucket, 0.0) + float(row["events"])
    note = "every event in the store, bots included" if bots else "the store's events, bots excluded"
    return {"source": "store", "times": starts, "series": _table(starts, counts), "note": note, "bots": bots}


async def from_stream(nc: Client, limit: int, top: int = 9) -> dict[str, Any]:
    js = nc.jetstream()
    now = time.time()
    starts = buckets(now)
    try:
        info = await js.stream_info(wire.STREAM)
    except NotFoundError:
        return {"source": "stream", "times": starts, "series": {}, "note": f"no {wire.STREAM} stream yet"}
    since = _dt.datetime.fromtimestamp(starts[0], _dt.UTC)
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since, ack_policy=AckPolicy.NONE,
        headers_only=True, inactive_threshold=30.0, filter_subject=wire.EVENTS_SUBJECTS,
    )
    psub = await js.pull_subscribe(wire.EVENTS_SUBJECTS, stream=wire.STREAM, config=config)
    note = "every event of the last 24 hours in the stream"
    try:
        pending = (await psub.consumer_info()).num_pending or 0
        if pending > limit:  # start over from the newest ``limit`` events
            await psub.unsubscribe()
            start = max(info.state.last_seq - limit + 1, info.state.first_seq)
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start, ack_policy=AckPolicy.NONE,
                headers_only=True, inactive_threshold=30.0, filter_subject=wire.EVENTS_SUBJECTS,
            )
            psub = await js.pull_subscribe(wire.EVENTS_SUBJECTS, stream=wire.STREAM, config=config)
            note = f"the newest {limit:,} of {pending:,} events (run the store for exact counts)"
            pending = min(pending, limit)
        counts: dict[str, dict[float, float]] = {}
        read = 0
        while read < pending:
            try:
                msgs = await psub.fetch(min(1000, pending - read), timeout=2.0)
            except TimeoutError:
                break
            for msg in msgs:
                stamp = msg.metadata.timestamp.timestamp()
                name = msg.subject.removeprefix(wire.KEY_PREFIX + ".")
                bucket = stamp - stamp % BUCKET_S
                per = counts.setdefault(name, {})
                per[bucket] = per.get(bucket, 0.0) + 1
            read += len(msgs)
            raise_if_cancelling()  # a fetch may swallow the cancel of a request the panel drops
    finally:
        try:
            await psub.unsubscribe()
        except Exception:  # noqa: BLE001 - best-effort cleanup: a closed connection took it already
            pass
    return {"source": "stream", "times": starts, "series": _table(starts, counts, top),
            "note": f"{note}, bots included: the stream's headers do not say", "bots": True}


async def events_per_name(nc: Client, store_service: str, limit: int, bots: bool = False) -> dict[str, Any]:
    """From the store when it answers (``bots``: with the events the edge flagged as bots),
    else from the stream, which cannot tell bots (the reason is in ``store_error``)."""
    try:
        return await from_store(nc, store_service, bots=bots)
    except (RPCError, KeyError, TypeError, ValueError) as exc:
        reason = str(getattr(exc, "message", exc))
    try:
        result = await from_stream(nc, limit)
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        result = {"source": "stream", "times": buckets(time.time()), "series": {}, "note": f"the stream cannot be read: {type(exc).__name__}"}
    result["store_error"] = reason
    return result


__all__ = ["STORE_SQL", "buckets", "events_per_name", "from_store", "from_stream", "store_sql"]
