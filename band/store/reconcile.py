"""``band store check``: is every event of the stream in the store exactly once?

Every row the store writes, in every event table and in ``bad_rows``, carries the stream
sequence of its message (``stream_seq``). So the check needs no event bodies: it reads
the window's sequences and message ids from the stream (an ephemeral consumer with
headers-only delivery, no acks: a few bytes per event), and asks the store which
sequences it holds and which ids it holds more than once. An event is accounted for
when its sequence is stored, or its id is (the same event published twice, past the
stream's duplicate window, is stored once under its first sequence).

An event not accounted for is *pending* when it is above the store's ack floor (the
highest sequence below which its durable consumer has acked everything): the store
has not finished with it and may still write it. Below the floor it is *missing*.

Runs in the store's process, so its single chDB answers; the CLI is a thin client
polling :meth:`Check.state` (a progress count for big windows).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from .. import wire
from .backend import Backend
from .config import STREAM_SEQ
from .pull import Puller
from .schema import quote
from .writer import delivery

FETCH_BATCH = 10_000
FETCH_WAIT_S = 2.0
IDS_SHOWN = 10_000  # ids listed per kind; the counts are always whole
INACTIVE_S = 30.0  # the server removes the check's consumer this long after a crashed check
# The consumers' names are fixed, so the store's NATS credential can allow exactly these
# (nats.conf): the check's window, and the count of the panel's last hour.
CHECK = "store_check"
COUNT = "store_count"


class Busy(Exception):
    """The check's consumer exists: another store replica is checking (or one crashed
    less than :data:`INACTIVE_S` ago)."""


@dataclass
class Window:
    """The stream's events in the window: sequence and message id (``None``: no numeric id)."""

    seqs: list[int] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)
    total: int = 0  # what the stream held in the window when the read began


def _window_consumer(name: str, since: dt.datetime | None) -> ConsumerConfig:
    return ConsumerConfig(
        name=name, ack_policy=AckPolicy.NONE, headers_only=True, filter_subject=wire.EVENTS_SUBJECTS,
        deliver_policy=DeliverPolicy.BY_START_TIME if since else DeliverPolicy.ALL, opt_start_time=since,
        inactive_threshold=INACTIVE_S, max_waiting=1,
    )


async def in_stream(nc: Client, since: dt.datetime | None) -> int:
    """How many events the stream holds from ``since`` (all of them when ``None``). The
    caller runs one at a time; one left by another replica is replaced."""
    await _delete(nc, COUNT)
    info = await nc.jetstream().add_consumer(wire.STREAM, _window_consumer(COUNT, since))
    try:
        return int(info.num_pending or 0)
    finally:
        await _delete(nc, COUNT)


async def read_window(nc: Client, since: dt.datetime | None, window: Window) -> None:
    """Fill ``window`` with the stream's sequences and ids from ``since``, up to the
    last sequence the stream held when the read began."""
    js = nc.jetstream()
    last = int((await js.stream_info(wire.STREAM)).state.last_seq)
    try:
        await js.consumer_info(wire.STREAM, CHECK)
    except NotFoundError:
        pass
    else:
        raise Busy(CHECK)
    info = await js.add_consumer(wire.STREAM, _window_consumer(CHECK, since))
    name = str(info.name)
    window.total = int(info.num_pending or 0)
    puller = await Puller(nc, wire.STREAM, name, pending_limit=FETCH_BATCH * 2).start()
    try:
        done = window.total == 0
        while not done:
            # no more than the window has left: a fetch waits for all it asks for, or its timeout
            msgs = await puller.fetch(min(FETCH_BATCH, window.total - len(window.seqs)), timeout=FETCH_WAIT_S)
            if not msgs:
                break  # nothing more in the window (messages removed by the stream's limits meanwhile)
            for msg in msgs:
                seq = delivery(msg.reply)[0]
                if seq > last:
                    done = True
                    break
                window.seqs.append(seq)
                window.ids.append(_int_id((msg.headers or {}).get(wire.MSG_ID_HEADER)))
                done = seq == last or len(window.seqs) >= window.total
    finally:
        puller.stopping()
        await puller.unsubscribe()
        await _delete(nc, name)


async def _delete(nc: Client, name: str) -> None:
    try:
        await nc.jetstream().delete_consumer(wire.STREAM, name)
    except (TimeoutError, NotFoundError, nats.errors.Error):
        pass  # gone already, or the server drops it once inactive


def _int_id(value: str | None) -> int | None:
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number < 2**64 else None


def ack_floor(info: Any) -> int:
    """The stream sequence below which the consumer has acked everything."""
    floor = getattr(info, "ack_floor", None)
    return int(getattr(floor, "stream_seq", 0) or 0) if floor is not None else 0


# --- the store's side (blocking: run in the engine's reading thread) -------------------
def _union(database: str, tables: Iterable[str], columns: str, where: str) -> str:
    return " UNION ALL ".join(f"SELECT {columns} FROM {quote(database)}.{quote(t)} WHERE {where}" for t in sorted(tables))


def stored_in(backend: Backend, database: str, tables: Iterable[str], lo: int, hi: int) -> tuple[set[int], list[dict[str, Any]]]:
    """The sequences in ``[lo, hi]`` the store holds, and each id held more than once
    there (``{"id", "rows", "seqs"}``)."""
    tables = sorted(tables)
    seq = quote(STREAM_SEQ.name)
    where = f"{seq} BETWEEN {{lo:UInt64}} AND {{hi:UInt64}}"
    rows = _union(database, tables, f"{seq} AS s, id", where)
    params = {"lo": lo, "hi": hi}
    seqs = {int(r["s"]) for r in backend.select(f"SELECT DISTINCT s FROM ({rows})", params)["rows"]}
    doubles = backend.select(f"SELECT toString(id) AS id, count() AS rows, groupArray(s) AS seqs FROM ({rows}) "
                             f"GROUP BY id HAVING rows > 1 ORDER BY id", params)["rows"]
    return seqs, [{"id": str(d["id"]), "rows": int(d["rows"]), "seqs": sorted(int(s) for s in d["seqs"])} for d in doubles]


def ids_stored(backend: Backend, database: str, tables: Iterable[str], ids: list[int]) -> set[int]:
    """Which of ``ids`` the store holds, under any sequence."""
    if not ids:
        return set()
    found = backend.select(f"SELECT DISTINCT id FROM ({_union(database, tables, 'id', 'id IN {ids:Array(UInt64)}')})",
                           {"ids": ids})["rows"]
    return {int(r["id"]) for r in found}


def verdict(window: Window, stored: set[int], by_id: set[int], floor: int) -> tuple[list[tuple[int | None, int]], list[tuple[int | None, int]]]:
    """``(missing, pending)``: the window's events not accounted for, as ``(id, seq)``,
    split at the ack floor."""
    missing: list[tuple[int | None, int]] = []
    pending: list[tuple[int | None, int]] = []
    for seq, id_ in zip(window.seqs, window.ids, strict=False):
        if seq in stored or (id_ is not None and id_ in by_id):
            continue
        (pending if seq > floor else missing).append((id_, seq))
    return missing, pending


def unmatched_ids(window: Window, stored: set[int]) -> list[int]:
    return [id_ for seq, id_ in zip(window.seqs, window.ids, strict=False) if seq not in stored and id_ is not None]


def report(window: Window, missing: list[tuple[int | None, int]], duplicated: list[dict[str, Any]],
           pending: list[tuple[int | None, int]], floor: int, with_ids: bool, seconds: float) -> dict[str, Any]:
    """The check's answer: counts always, ids when asked (at most :data:`IDS_SHOWN` of each)."""
    out: dict[str, Any] = {
        "events": len(window.seqs), "first_seq": window.seqs[0] if window.seqs else None,
        "last_seq": window.seqs[-1] if window.seqs else None, "ack_floor": floor,
        "missing": len(missing), "duplicated": len(duplicated), "pending": len(pending),
        "ok": not missing and not duplicated, "seconds": round(seconds, 3),
    }
    if with_ids:
        def listed(items: list[tuple[int | None, int]]) -> list[dict[str, Any]]:
            return [{"id": None if i is None else str(i), "seq": s} for i, s in items[:IDS_SHOWN]]

        out["missing_ids"] = listed(missing)
        out["pending_ids"] = listed(pending)
        out["duplicated_ids"] = duplicated[:IDS_SHOWN]
    return out


class Check:
    """One run of the check in the store, its progress readable while it runs."""

    def __init__(self, since: str | None, with_ids: bool) -> None:
        self.key = (since, with_ids)
        self.window = Window()
        self.stage = "reading the stream"
        self.started = time.monotonic()
        self.read_s = 0.0  # reading the stream's side took this long
        self.result: dict[str, Any] | None = None
        self.task: asyncio.Task[None] | None = None

    def state(self) -> dict[str, Any]:
        if self.task is not None and self.task.done() and self.result is None:
            exc = self.task.exception()
            return {"running": False, "error": f"{type(exc).__name__}: {exc}" if exc else "the check ended without an answer"}
        if self.result is not None:
            return {"running": False, "result": self.result}
        return {"running": True, "stage": self.stage, "read": len(self.window.seqs), "total": self.window.total}


__all__ = ["CHECK", "COUNT", "Busy", "Check", "Window", "ack_floor", "ids_stored", "in_stream", "read_window", "report", "stored_in",
           "unmatched_ids", "verdict"]
