"""chDB in a process of its own, behind the same :class:`~.backend.Backend` calls.

chDB runs ClickHouse inside Python, and while a statement runs in one thread it keeps
taking the GIL back: measured, a thread looping beside a running chDB statement (an
insert, or a plain ``SELECT`` on one ClickHouse thread) advanced at 0.27-0.31 of its
speed while burning 0.83 of a core. In the store that thread is the event loop (NATS,
acks, building the next batch), slowed to a third for the whole of every insert.

So the store's chDB lives in a child process that owns the data directory, and each
call crosses a pipe: one for writes and one for read-only queries, each served by a
thread of the child, so a query never waits behind an insert; a third carries reads of
any size, each in a thread and on a session of its own (:mod:`.results`). An error comes back as
the same :class:`StoreError` (or :class:`Unavailable`). A child that dies is reported
as :class:`Unavailable` and started again on the next call (the writer retries with
backoff meanwhile, acking nothing). The child exits when its parent does, even after
a SIGKILL: its end of each pipe then reads end-of-file.

A test hook, off unless set: ``BAND_STORE_TEST_EXIT_AFTER_INSERT=N`` makes each child
exit (``os._exit``) right after its Nth insert has committed, before it replies: the
moment where the writer cannot know its insert landed (tests/faults/).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from multiprocessing import util
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import results as _results
from .backend import ChdbBackend, StoreError, Unavailable

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0  # an idle child closes chDB and exits well within this
BUSY_STOP_S = 0.5  # a child still running a statement at stop: its answer has no one left to go to
EXIT_AFTER_INSERT = "BAND_STORE_TEST_EXIT_AFTER_INSERT"  # the test hook (see the module)


class _Backend(ChdbBackend):
    """chDB whose process exits right after its ``exit_after``-th insert commits (the test hook)."""

    def __init__(self, path: Path, exit_after: int) -> None:
        super().__init__(path)
        self.inserts_left = exit_after

    def insert(self, database: str, table: str, body: bytes, fmt: str = "JSONEachRow",
               columns: Sequence[str] = ()) -> None:
        super().insert(database, table, body, fmt, columns)
        self.inserts_left -= 1
        if self.inserts_left == 0:
            os._exit(70)  # committed, never answered


def _open(path: str) -> ChdbBackend:
    exit_after = int(os.environ.get(EXIT_AFTER_INSERT) or 0)
    return _Backend(Path(path), exit_after) if exit_after > 0 else ChdbBackend(Path(path))


def _serve(conn: Connection, backend: ChdbBackend) -> None:
    """Answer one pipe's calls until it closes (the parent stopped or died)."""
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", getattr(backend, method)(*args))
        except StoreError as exc:
            answer = ("unavailable" if isinstance(exc, Unavailable) else "error", (exc.message, exc.code))
        except Exception as exc:  # noqa: BLE001 - a bug of ours, not ClickHouse's answer: still an answer, never a hang
            answer = ("error", (f"{type(exc).__name__}: {exc}", 0))
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return


def _child(path: str, writes: Connection, reads: Connection, streams: Connection) -> None:
    """The child's main: open chDB, serve the pipes, close chDB when the writes pipe ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by closing the pipes
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        backend = _open(path)
    except StoreError as exc:
        writes.send(("unavailable" if isinstance(exc, Unavailable) else "error", (exc.message, exc.code)))
        return
    writes.send(("ok", None))
    threading.Thread(target=_serve, args=(reads, backend), name="store-reads", daemon=True).start()
    threading.Thread(target=_results.serve, args=(streams, str(backend.path)), name="store-streams",
                     daemon=True).start()
    _serve(writes, backend)
    backend.close()


class _Channel:
    """One pipe to the child, one call at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Any:
        with self.lock:
            try:
                self.conn.send((method, args))
                kind, value = self.conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                raise Unavailable("the store's chDB process exited; it is started again on the next statement") from None
        return _answer(kind, value)


def _close_all(*conns: Connection) -> None:
    for conn in conns:
        conn.close()


def _answer(kind: str, value: Any) -> Any:
    if kind == "ok":
        return value
    message, code = value
    raise (Unavailable if kind == "unavailable" else StoreError)(message, code)


class IsolatedChdb:
    """A :class:`~.backend.Backend` whose chDB runs in a child process (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # starting and stopping the child
        self._process: Any = None
        self._writes: _Channel | None = None
        self._reads: _Channel | None = None
        self._results: _results.Results | None = None
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of this process's threads
        writes, child_writes = context.Pipe()
        reads, child_reads = context.Pipe()
        streams, child_streams = context.Pipe()  # a socket pair: it also carries each answer's pipe
        process = context.Process(target=_child, args=(str(self.path), child_writes, child_reads, child_streams),
                                  name="band-store-chdb", daemon=True)
        process.start()
        child_writes.close()  # ours closed: the child's reads end at EOF when we are gone
        child_reads.close()
        child_streams.close()
        if not writes.poll(START_TIMEOUT_S):
            process.kill()
            raise Unavailable(f"the store's chDB process did not open {self.path} within {START_TIMEOUT_S:.0f} s")
        try:
            _answer(*writes.recv())
        except EOFError:
            raise Unavailable(f"the store's chDB process exited while opening {self.path}") from None
        self._process, self._writes, self._reads = process, _Channel(writes), _Channel(reads)
        self._results = _results.Results(streams)
        # at interpreter exit without close(): multiprocessing runs this before it joins
        # its children, so the child sees EOF and exits (it ignores SIGTERM)
        util.Finalize(self, _close_all, args=(writes, reads, streams), exitpriority=10)

    def _channel(self, read: bool) -> _Channel:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._stop()
                self._start()
            channel = self._reads if read else self._writes
            assert channel is not None
            return channel

    def results(self) -> _results.Results:
        """Reads of any size (:mod:`.results`), on a child that runs (started again if it died)."""
        self._channel(True)
        assert self._results is not None
        return self._results

    def command(self, sql: str) -> None:
        self._channel(False).call("command", sql)

    def select(self, sql: str, params: Mapping[str, Any] | None = None, readonly: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self._channel(readonly).call("select", sql, dict(params) if params else None, readonly)
        return result

    def insert(self, database: str, table: str, body: bytes, fmt: str = "JSONEachRow",
               columns: Sequence[str] = ()) -> None:
        self._channel(False).call("insert", database, table, body, fmt, list(columns))

    def _stop(self) -> None:
        """Close the pipes and let the child close chDB. A statement still running (a
        query cut at the service's drain limit, an insert the writer gave up on) would
        hold chDB's close until it ends, so a busy child is killed after ``BUSY_STOP_S``:
        ClickHouse writes each part whole, and an insert never answered was never acked,
        so JetStream redelivers it and the writer looks up what it already stored."""
        if self._results is not None:
            self._results.close()
        channels = [c for c in (self._writes, self._reads) if c is not None]
        busy = any(c.lock.locked() for c in channels)
        for channel in channels:
            channel.conn.close()  # EOF in the child: it closes chDB and exits
        if self._process is not None:
            self._process.join(BUSY_STOP_S if busy else STOP_TIMEOUT_S)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
        self._process = self._writes = self._reads = self._results = None

    def close(self) -> None:
        with self._lock:
            self._stop()


__all__ = [
    "BUSY_STOP_S",
    "EXIT_AFTER_INSERT",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "IsolatedChdb",
]
