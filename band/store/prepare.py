"""Event bytes to encoded rows, in worker processes beside the store's event loop.

Decoding an event, building its row and encoding it is most of the store's Python work
(about 30 of the 50 µs per event its process spends, chDB being in a process of its
own), and it holds the GIL: one interpreter caps ingest near 20,000 events/s however
many cores there are. So the
writer can hand each fetched chunk's bytes to ``build_processes`` worker processes
(``auto``: one per core beyond the second, at most 4) and get back, per message, its
table, id, time and row as a JSON array over the table's columns
(:meth:`RowBuilder.encode`). Pickling that costs the loop about 2 µs per event, and
the whole machine about 12 µs more per event than building in-process.

With no workers (two cores or fewer, or ``build_processes: 0``) the same function runs
in the store's process. A worker that dies (killed by hand, out of memory) costs nothing:
its chunk is prepared in-process and the pool is started again.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NamedTuple

from .. import wire
from .._core.log import Logger
from . import body
from .config import StoreConfig
from .identity import change_of
from .identity_graph import Change
from .rows import BadRow, RowBuilder

MAX_AUTO_PROCESSES = 4
PARENT_CHECK_S = 0.5


class Prepared(NamedTuple):
    """A chunk's messages, ready to insert, as parallel lists (they cross a process
    boundary: plain lists pickle four times faster than a tuple per message)."""

    tables: list[str]
    ids: list[int]
    ms: list[int]  # the event's time in ms (bad_rows keeps it when the row is refused later)
    rows: list[bytes]  # each a line of an insert into its table (RowBuilder.encode)
    changes: list[Change | None]  # the identity change each carries (mostly None)


def collect_less() -> None:
    """Run CPython's cycle collector rarely in a process that builds rows.

    Events are trees (no cycles: reference counting frees them), but a writer keeps a
    few batches alive, thousands of dicts and lists. At the default thresholds the
    collector walks those every 700 allocations; measured, that was a quarter of the
    cost of building rows (11 of 40 µs per event). Startup's objects are frozen out of
    the collections, and a young collection waits for 100,000 allocations (older
    generations keep their default pace, so cyclic garbage is still collected).
    """
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)


def prepare_with(builder: RowBuilder, datas: Sequence[bytes], stream: Sequence[tuple[int, int, int]]) -> Prepared:
    """The chunk's rows; ``stream`` holds ``(id, ms, sequence)`` from each stream message:
    the id and time stand in for an event without its own, the sequence fills
    ``stream_seq``. Never raises on bad data: an event that cannot be a row becomes a
    ``bad_rows`` row."""
    out = Prepared([], [], [], [], [])
    for data, (fallback_id, fallback_ms, seq) in zip(datas, stream, strict=True):
        try:
            message = body.load(data)
        except wire.DecodeError as exc:
            message = exc
        table, event_id, ms, row = _row(builder, data, message, fallback_id, fallback_ms, seq)
        out.tables.append(table)
        out.ids.append(event_id)
        out.ms.append(ms)
        out.rows.append(builder.encode(table, row))
        out.changes.append(change_of(message) if isinstance(message, dict) else None)
    return out


def _row(builder: RowBuilder, data: bytes, message: Any, fallback_id: int, fallback_ms: int,
         seq: int) -> tuple[str, int, int, Any]:
    if isinstance(message, wire.DecodeError):
        return _bad(builder.bad_row(data.decode("utf-8", "replace"), "", str(message), fallback_id, fallback_ms, seq),
                    fallback_ms)
    if not isinstance(message, dict):
        return _bad(builder.bad_row(message, "", "the event is not a JSON object", fallback_id, fallback_ms, seq),
                    fallback_ms)
    if builder.refused(message):
        return _bad(builder.failed_row(message, fallback_id, fallback_ms, seq), fallback_ms)
    try:
        return builder.line(message, fallback_id, fallback_ms, seq)
    except BadRow as exc:
        return _bad(builder.bad_row(message, builder.route(message.get("service"), message.get("name")), str(exc),
                                    fallback_id, fallback_ms, seq), fallback_ms)


def _bad(bad: tuple[str, dict[str, Any]], fallback_ms: int) -> tuple[str, int, int, Any]:
    table, row = bad
    return table, row["id"], row.get("timestamp") or fallback_ms, row


# --- in a worker process ----------------------------------------------------------------
_builder: RowBuilder | None = None


def _start(config: StoreConfig) -> None:
    """A worker's initializer: the store's process handles signals and stops the pool;
    if it is killed instead, the worker notices within a second and exits."""
    global _builder
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    collect_less()
    _builder = RowBuilder(config)
    threading.Thread(target=_exit_with, args=(os.getppid(),), name="store-parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """Exit once ``parent`` is gone. A pool worker waits on a queue it holds both ends of,
    so a SIGKILLed store would otherwise leave it waiting forever."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _prepare(datas: list[bytes], stream: list[tuple[int, int, int]]) -> Prepared:
    assert _builder is not None, "the worker was not started with _start"
    return prepare_with(_builder, datas, stream)


def _ready() -> bool:
    return _builder is not None


def processes(setting: str | int, cpus: int | None = None) -> int:
    """Worker processes for ``build_processes`` (``auto`` or a number).

    ``auto`` leaves two cores to the store's process and chDB's, and uses the rest (at
    most 4): handing rows to a worker costs about 12 µs per event more in all, so on
    2 cores, where nothing is spare, building in-process measured faster.
    """
    if str(setting).strip().lower() == "auto":
        return max(0, min(MAX_AUTO_PROCESSES, (cpus or os.cpu_count() or 1) - 2))
    return max(0, int(setting))


class Preparer:
    """Prepares chunks in ``count`` worker processes, or in this process when 0."""

    def __init__(self, builder: RowBuilder, count: int, logger: Logger) -> None:
        self.builder = builder
        self.count = count
        self.log = logger
        self._pool: ProcessPoolExecutor | None = None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: this process runs chDB's threads, which a fork would copy mid-flight
            self._pool = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start, initargs=(self.builder.config,))
        return self._pool

    async def start(self) -> None:
        """Start the workers now (a spawned process takes a second to import), not on
        the first chunk."""
        if self.count:
            pool, loop = self._started(), asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(self.count)))

    async def prepare(self, datas: list[bytes], stream: list[tuple[int, int, int]]) -> Prepared:
        """Rows for ``datas``; ``stream`` as in :func:`prepare_with`."""
        if self.count == 0 or not datas:
            return prepare_with(self.builder, datas, stream)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._started(), _prepare, datas, stream)
        except BrokenProcessPool:
            self.log.warning("store: a row-building process died; building this chunk here and starting it again")
            broken, self._pool = self._pool, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            return prepare_with(self.builder, datas, stream)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


__all__ = [
    "MAX_AUTO_PROCESSES",
    "PARENT_CHECK_S",
    "Prepared",
    "Preparer",
    "collect_less",
    "prepare_with",
    "processes",
]
