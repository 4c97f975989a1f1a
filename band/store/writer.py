"""The stream → ClickHouse loop: fetch, build rows, insert a batch, then ack it.

Exactly once, by plain ``SELECT count()``:

- A message is acked only after the row holding it is in ClickHouse (or in
  ``bad_rows``). A crash before the ack leaves it unacked: JetStream delivers it again.
- Every row keeps its message's stream sequence (``stream_seq``), and the writer keeps
  a high-water mark (:mod:`.highwater`): the highest sequence that may be in the store.
  It is read from the store (``max(stream_seq)``) when the writer starts and after each
  NATS reconnect, and raised to a batch's highest sequence before the batch's insert is
  tried, so an insert whose outcome is unknown (a crash, a timeout) is covered.
- A message may already be stored (is *suspect*) when its sequence is at or below the
  mark, when JetStream delivered it before, while a replay runs, and when it has no
  JetStream metadata. A suspect's ``id`` is looked up in its table and ``bad_rows``
  first and skipped when found. The delivery count alone is not enough: a nats-server
  restarted after a crash rolls its consumer's ack state back and delivers stored
  messages again as first deliveries. Ids are unique per event (the edge's
  ``Nats-Msg-Id``), so nothing is written twice and no ``FINAL`` or
  ``ReplacingMergeTree`` is needed.
- Suspects are judged, the mark raised and the batch inserted under the engine's lock,
  so a replay and the live writer in one process cannot both find an id missing.
- A batch whose insert fails on its data is split in halves until the rows at fault
  are found; they go to ``bad_rows`` with ClickHouse's reason, the rest lands.
- Any other failure (server unreachable, disk full, chDB's process dying, a timeout,
  any exception) keeps the batch: nothing is acked, and the insert is retried with
  backoff with every message of the batch suspect, since any part of it may have been
  written. JetStream is told the messages are in progress so they are not handed to
  another replica meanwhile.

In steady state nothing is looked up: each batch's sequences are above the mark.

Fetching never waits on ClickHouse: batches fill while the previous ones are written
(those cut during one insert go in the next one together), and each fetched chunk's
rows are built meanwhile, in worker processes when there are cores for them
(:mod:`.prepare`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout

from .. import wire
from .._core.log import Logger
from . import body
from .backend import Backend, StoreError
from .config import BAD_ROWS, FAILED_EVENTS, StoreConfig
from .highwater import HighWater, stored_max
from .identity import Identities
from .identity_graph import Change, Rows
from .lag import LagClock
from .metrics import metrics
from .prepare import Preparer
from .pull import Puller
from .rows import RowBuilder
from .schema import quote

FETCH_WAIT_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass
class Health:
    """What ``store.status`` and the metrics report."""

    state: str = "starting"  # starting | writing | retrying | failed | stopped
    last_error: str = ""
    rows: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # redelivered events found already stored
    batches: int = 0
    retries: int = 0
    last_flush: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.state in ("starting", "writing"), "state": self.state, "last_error": self.last_error,
                "rows": dict(self.rows), "bad_rows": self.rows.get(BAD_ROWS, 0), "skipped": self.skipped,
                "batches": self.batches, "retries": self.retries, "last_flush": self.last_flush}


@dataclass(slots=True)
class Item:
    """One message on its way: its encoded row, its stream sequence, and whether it may
    already be stored."""

    msg: Msg
    table: str
    id: int
    ms: int
    row: bytes
    seq: int  # 0 for a message without JetStream metadata
    suspect: bool
    stream_ms: int = 0  # when the stream stored it (lag to queryable starts there)
    identity: Change | None = None  # the identity change it carries (see .identity)


class Engine:
    """The backend behind one thread, so statements never run concurrently and the
    event loop never blocks on ClickHouse."""

    def __init__(self, backend: Backend, database: str, compact: frozenset[str] = frozenset()) -> None:
        self.backend = backend
        self.database = database
        self.compact = compact  # tables whose rows go as JSONCompactEachRow (see body.py)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        # one look-up-then-insert at a time, so a replay and the live writer cannot both
        # find an id missing and both write it
        self.lock = asyncio.Lock()
        self.mark = HighWater()  # every writer's, under the same lock
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="store-reader")

    @classmethod
    def of(cls, backend: Backend, config: StoreConfig) -> Engine:
        """The engine for ``config``'s database, inserting compact where that is exact."""
        return cls(backend, config.database, body.compact_tables(list(config.tables.values())))

    async def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._insert, table, rows)

    def _insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        fmt, columns, data = body.encode(rows, table in self.compact)
        self.backend.insert(self.database, table, data, fmt, columns)

    async def insert_encoded(self, table: str, form: tuple[str, list[str]], rows: list[bytes]) -> None:
        """Rows already encoded in ``form`` (``(format, columns)``, see ``RowBuilder.form``)."""
        fmt, columns = form
        await asyncio.get_running_loop().run_in_executor(
            self._pool, self.backend.insert, self.database, table, b"\n".join(rows), fmt, columns)

    async def existing(self, table: str, ids: list[int]) -> set[int]:
        sql = f"SELECT id FROM {quote(self.database)}.{quote(table)} WHERE id IN {{ids:Array(UInt64)}}"
        result = await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: self.backend.select(sql, {"ids": ids}))
        return {int(r["id"]) for r in result["rows"]}

    async def call(self, fn: Any, *args: Any, read: bool = False) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._readers if read else self._pool, fn, *args)

    def close(self) -> None:
        """No new statements, close the backend, then wait for the threads. In this order
        a statement still running (a query cut at the service's drain limit, an insert
        the writer gave up on) ends with its backend (a busy chDB process is stopped,
        see :mod:`.isolated`) instead of holding the stop until it is done."""
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.backend.close()
        self._readers.shutdown(wait=True)
        self._pool.shutdown(wait=True)


class Writer:
    """Consumes one pull consumer into the store until ``stop`` is set."""

    def __init__(self, engine: Engine, builder: RowBuilder, psub: Puller, *, batch_rows: int, batch_seconds: float,
                 ack_wait_s: float, health: Health, logger: Logger, check_all: bool = False,
                 preparer: Preparer | None = None, lag: LagClock | None = None,
                 identities: Identities | None = None) -> None:
        self.engine = engine
        self.identities = identities
        self.lag = lag
        self.builder = builder
        self.preparer = preparer or Preparer(builder, 0, logger)
        self.psub = psub
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.ack_wait_s = ack_wait_s
        self.health = health
        self.log = logger
        self.check_all = check_all
        self.processed = 0  # messages acked (stored, skipped or kept in bad_rows)
        self.checking_all: Any = lambda: False  # true while a replay runs beside this writer
        self.tombstones: Any = None  # drops events of forgotten people (band/store/tombstones.py), set by the store
        self._queued: list[list[asyncio.Future[list[Item]]]] = []  # batches cut, waiting for the insert in progress
        self.stop = asyncio.Event()

    def request_stop(self) -> None:
        """Stop after the batch in hand (:meth:`run` then stores it and returns)."""
        self.stop.set()
        self.psub.stopping()

    async def run(self) -> None:
        chunks: list[asyncio.Future[list[Item]]] = []  # this batch's fetched chunks, their rows being built
        size = 0
        started = 0.0
        storing: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        try:
            async with self.engine.lock:
                await self._read_mark()  # before the first fetch
        except StoreError as exc:  # the first batch reads it again before it is judged
            self.log.warning("store: cannot read the stored stream sequences yet", error=exc.message)
        try:
            while not self.stop.is_set():
                now = loop.time()
                wait = FETCH_WAIT_S if not size else max(0.05, min(FETCH_WAIT_S, started + self.batch_seconds - now))
                room = self.batch_rows - size
                if room > 0:
                    msgs = await self._fetch(room, wait)
                    if msgs and not size:
                        started = min(self.psub.oldest, loop.time())  # the batch is as old as its first event
                    if msgs:
                        chunks.append(asyncio.ensure_future(self._items(msgs)))
                        size += len(msgs)
                if size and (size >= self.batch_rows or loop.time() - started >= self.batch_seconds):
                    self._queued.append(chunks)
                    chunks, size = [], 0
                    if storing is not None and storing.done():
                        storing.result()  # a batch that failed stops the writer
                        storing = None
                    if storing is None:
                        storing = loop.create_task(self._store_queued())
        finally:
            if chunks and not self.health.state == "failed":
                self._queued.append(chunks)
            if storing is not None:
                await asyncio.shield(storing)  # it takes what was queued meanwhile too
            if self._queued and not self.health.state == "failed":
                await self._store_queued()
            try:
                await self.psub.unsubscribe()
            except Exception:  # noqa: BLE001 - closed connection: the subscription is gone with it
                pass

    async def _store_queued(self) -> None:
        """Store the batches cut so far, all in one insert, until none is left: while one
        insert runs the next batches are fetched and built, and go in the next insert
        together. Under a backlog that makes inserts of several batches, which ClickHouse
        merges less (measured: 36 → 27 µs of chDB's CPU per event); the consumer's
        ``max_ack_pending`` (four batches) bounds how many wait."""
        while self._queued:
            taken, self._queued = self._queued, []
            batch = [item for chunks in taken for items in await asyncio.gather(*chunks) for item in items]
            await self.flush(batch, give_up_on_stop=True)

    async def _fetch(self, room: int, wait: float) -> list[Msg]:
        try:
            return await self.psub.fetch(room, timeout=wait)
        except (TimeoutError, NatsTimeout):
            return []
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - connection trouble: the client reconnects by itself
            self.log.warning("store: fetch failed; retrying", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):  # back off, but not past a stop
                async with asyncio.timeout(1.0):
                    await self.stop.wait()
            return []

    async def _items(self, msgs: list[Msg]) -> list[Item]:
        """The chunk's items, their rows built by the preparer."""
        deliveries = [delivery(msg.reply) for msg in msgs]
        stream = [(((sent_ms << 22) | (seq & 0x3FFFFF)) & (2**64 - 1), sent_ms, seq)  # an id for an event without one
                  for seq, sent_ms, _ in deliveries]
        prepared = await self.preparer.prepare([msg.data for msg in msgs], stream)
        check_all = self.check_all or self.checking_all()
        return [Item(msg, table, id_, ms, row, seq, check_all or delivered > 1, sent_ms, change)
                for msg, table, id_, ms, row, (seq, sent_ms, delivered), change
                in zip(msgs, prepared.tables, prepared.ids, prepared.ms, prepared.rows, deliveries, prepared.changes,
                       strict=True)]

    # --- one batch ----------------------------------------------------------------
    async def flush(self, batch: list[Item], give_up_on_stop: bool = True) -> None:
        """Store ``batch`` (retrying until it is stored or we stop), then ack it."""
        firsts = _first_per_id(batch)
        groups = _by_table(firsts)
        started = time.monotonic()
        done: set[str] = set()
        identity: Rows | None = None
        delay = 0.5
        last_touch = time.monotonic()
        while True:
            try:
                async with self.engine.lock:
                    if self.tombstones is not None:  # under the lock: a forget waits for it once (forget.py)
                        kept = self.tombstones.sift(firsts)
                        if kept is not firsts:  # neither rows nor identity changes of a forgotten person
                            firsts, groups = kept, _by_table(kept)
                    await self._judge(batch)
                    for table, items in groups.items():
                        if table in done:
                            continue
                        fresh = await self._unstored(table, items)
                        if fresh:
                            await self._insert(table, fresh)
                        done.add(table)
                    if self.identities is not None:
                        if identity is None:  # applied once, in stream order, under the lock
                            identity = self.identities.apply(firsts, live=not self.check_all)
                        await self.identities.insert(self.engine, identity, done, any(it.suspect for it in batch),
                                                     self.health.rows)
                        self.identities.done(max((it.seq for it in batch), default=0))
                break
            except Exception as exc:  # noqa: BLE001 - anything but a data error (handled in _insert): the outcome is unknown
                for item in batch:
                    item.suspect = True  # any part of the batch may be stored now
                error = exc.message if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
                self.health.state, self.health.last_error = "retrying", error
                self.health.retries += 1
                metrics().retries.inc()
                metrics().healthy.set(0)
                self.log.warning("store: ClickHouse write failed; keeping the batch and retrying",
                                 error=error, rows=len(batch), retry_in=delay)
                if time.monotonic() - last_touch > self.ack_wait_s / 3:
                    await _each(batch, "in_progress")  # still ours: not to be redelivered meanwhile
                    last_touch = time.monotonic()
                with contextlib.suppress(TimeoutError):  # a pause, cut short by a stop
                    async with asyncio.timeout(delay):
                        await self.stop.wait()
                if self.stop.is_set() and give_up_on_stop:
                    self.log.warning("store: stopping with a batch not written; JetStream delivers it again", rows=len(batch))
                    return
                delay = min(delay * 2, BACKOFF_MAX_S)
        if self.lag is not None:
            self.lag.observe(item.stream_ms for item in batch)
        await _each(batch, "ack")
        self.processed += len(batch)
        self.health.state, self.health.batches, self.health.last_flush = "writing", self.health.batches + 1, time.time()
        metrics().healthy.set(1)
        metrics().batch_seconds.observe(time.monotonic() - started)

    async def _read_mark(self) -> None:
        """Read the mark from the store when this connection has not yet: at start, and
        after a reconnect (the server may have restarted and rolled its consumer back).
        Under the engine's lock."""
        epoch = self.psub.epoch
        if self.engine.mark.epoch == epoch:
            return
        stored = await self.engine.call(stored_max, self.engine.backend, self.engine.database,
                                        self.builder.config.routed_tables())
        self.engine.mark.settle(stored, await self.psub.last_seq(), epoch)
        self.log.info("store: stream sequences up to the mark are looked up before they are written",
                      mark=self.engine.mark.seq)

    async def _judge(self, batch: list[Item]) -> None:
        """Mark suspect what may be stored already, then raise the mark over the batch:
        from here on its insert may happen without our knowing. Under the engine's lock."""
        await self._read_mark()
        mark, top = self.engine.mark, 0
        for item in batch:
            if mark.covers(item.seq):
                item.suspect = True
            if item.seq > top:
                top = item.seq
        mark.raise_to(top)

    async def _unstored(self, table: str, items: list[Item]) -> list[Item]:
        """``items`` less those a previous delivery already stored (looked up by id)."""
        suspects = [it.id for it in items if it.suspect]
        if not suspects:
            return items
        found = await self.engine.existing(table, suspects)
        if table != BAD_ROWS:
            found |= await self.engine.existing(BAD_ROWS, suspects)
        if table == FAILED_EVENTS:  # replay-failed moved it to its own table: stored already
            for routed in sorted(set(self.builder.config.destinations.values())):
                found |= await self.engine.existing(routed, suspects)
        if found:
            skipped = sum(1 for it in items if it.suspect and it.id in found)
            self.health.skipped += skipped
            metrics().skipped.inc(skipped)
        return [it for it in items if not (it.suspect and it.id in found)]

    async def _insert(self, table: str, items: list[Item]) -> None:
        """Insert; on a data error split in halves until the bad rows are isolated."""
        try:
            await self.engine.insert_encoded(table, self.builder.form(table), [it.row for it in items])
            self.health.rows[table] += len(items)
            metrics().rows.labels(table).inc(len(items))
        except StoreError as exc:
            if not exc.is_data_error:
                raise
            if len(items) > 1:
                half = len(items) // 2
                await self._insert(table, items[:half])
                await self._insert(table, items[half:])
                return
            if table == BAD_ROWS:
                raise  # cannot happen with the stock bad_rows; never loop on it
            item = items[0]
            message = _message_of(item.msg)
            _, row = self.builder.bad_row(message, table, exc.message, item.id, item.ms, item.seq)
            self.log.warning("store: an event went to bad_rows", table=table, id=str(item.id), reason=exc.message)
            await self._insert(BAD_ROWS, [Item(item.msg, BAD_ROWS, item.id, item.ms, self.builder.encode(BAD_ROWS, row),
                                               item.seq, False, item.stream_ms)])


def delivery(reply: str) -> tuple[int, int, int]:
    """``(stream sequence, stored at in ms, times delivered)`` from a JetStream reply
    subject, ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>``
    (or the form with domain and account hash before the stream): what nats-py's
    ``metadata`` gives, without its objects and datetime per message."""
    tokens = reply.split(".")
    at = 2 if len(tokens) == 9 else 4
    try:
        return int(tokens[at + 3]), int(tokens[at + 5]) // 1_000_000, int(tokens[at + 2])
    except (IndexError, ValueError):  # not from JetStream: suspect, so it is looked up
        return 0, int(time.time() * 1000), 2


def _message_of(msg: Msg) -> Any:
    try:
        return wire.decode(msg.data)
    except wire.DecodeError:
        return msg.data.decode("utf-8", "replace")


def _first_per_id(batch: Iterable[Item]) -> list[Item]:
    seen: set[int] = set()
    out = []
    for item in batch:
        key = item.id
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _by_table(items: Iterable[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.table, []).append(item)
    return groups


async def _each(batch: list[Item], what: str) -> None:
    """Ack (or mark in progress) every message; a lost ack only means a redelivery,
    which the id lookup turns into a skip."""
    for item in batch:
        try:
            await getattr(item.msg, what)()
        except Exception:  # noqa: BLE001 - best effort per message: a closed connection must not stop the rest
            pass


__all__ = [
    "BACKOFF_MAX_S",
    "FETCH_WAIT_S",
    "Engine",
    "Health",
    "Item",
    "Writer",
]
