"""A read-only query's answer, read from chDB's process as a byte stream.

Both the store's ClickHouse HTTP interface (:mod:`.http`) and ``store.stream`` over NATS
(:mod:`.cursor`) read answers of any size through this one path, in constant memory and
without waiting for the writer:

- Each query runs in chDB's process (:mod:`.isolated`) in a thread of its own, on a
  session of its own (``readonly=1``, the caller's database and limits as the session's
  start-up settings: a ``readonly=1`` session refuses them per query). Sessions on one
  data directory share the engine, so reads never queue behind an insert's lock.
- chDB's own streaming call cuts the answer into one complete document per block (a
  Parquet file, a JSON object with its own ``meta``), which no client can read as one
  answer. So ClickHouse writes the answer itself, exactly as a server would send it,
  with ``INTO OUTFILE '/dev/fd/N' TRUNCATE`` (a no-op on a pipe) into a pipe whose read end is handed to the
  store's process (``SCM_RIGHTS``). The pipe is the flow control: when the reader stops
  reading, ClickHouse blocks on its next write, and memory stays one pipe buffer.
- What runs is ClickHouse's own formatting of the statement (the text a server sends to
  its shards), checked by the read-only guard (:func:`.backend.check_read`) as it will
  run, with only ``INTO OUTFILE``/``COMPRESSION``/``FORMAT`` of our own after it.
- A query is cancelled by ``KILL QUERY`` on the marker comment it carries (it may be
  computing, with nothing to write yet); one that is writing also stops at its next
  write once the pipe's read end is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import threading
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any, Protocol

from .backend import StoreError, Unavailable, check_read, parse_json, wrap_run

DEFAULT_FORMAT = "TabSeparated"
UNKNOWN_FORMAT_CODE = 73  # ClickHouse's UNKNOWN_FORMAT
READ_BYTES = 1 << 16
# what may go into a session's start-up settings (chDB reads them as `key=value&...`)
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:+\-/ ]*\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FORMAT_TAIL = re.compile(r"\A(?P<statement>.*) FORMAT (?P<format>[A-Za-z0-9_]+)\Z", re.S)
MARKER = "band-read:"  # the comment a running read carries, for KILL QUERY


@dataclass(frozen=True)
class Request:
    """One read: ``sql`` with ``{name:Type}`` ``params``; ``settings`` are ClickHouse settings
    (already allowed by the caller); ``compression`` is ClickHouse's name (``gzip``, ``zstd``...)."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)
    database: str = "stats"
    default_format: str = DEFAULT_FORMAT
    settings: Mapping[str, str] = field(default_factory=dict)
    compression: str | None = None
    query_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def session_string(path: str, database: str, settings: Mapping[str, str]) -> str:
    """chDB's connection string for a reading session: ``readonly=1`` last, so nothing lowers it.

    Raises:
        StoreError: a database or setting that cannot travel as a start-up argument.
    """
    if not _NAME.match(database):
        raise StoreError(f"database {database!r} is not a plain name (letters, digits, _)", 81)
    parts = [f"database={database}"]
    for name, value in settings.items():
        if not _NAME.match(name) or not _SAFE_VALUE.match(str(value)):
            raise StoreError(f"setting {name}={value!r}: use letters, digits and . : + - / in its value", 115)
        parts.append(f"{name}={value}")
    parts.append("readonly=1")
    return f"{path}?{'&'.join(parts)}"


def split_format(statement: str, default: str) -> tuple[str, str]:
    """``(statement without its FORMAT clause, the format)`` from ClickHouse's one-line
    formatting of a statement, where a FORMAT clause is always last when present."""
    found = _FORMAT_TAIL.match(statement)
    if found is None:
        return statement, default
    return found.group("statement"), found.group("format")


# --- in chDB's process -----------------------------------------------------------------------
def serve(conn: Connection, path: str) -> None:
    """Answer ``("open", id, Request)`` and ``("kill", id)`` until ``conn`` closes (one thread)."""
    lock = threading.Lock()  # one message (and its handle) at a time on conn
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "open":
            threading.Thread(target=_one, args=(conn, lock, path, message[1], message[2]), daemon=True,
                             name="store-read").start()
        elif message[0] == "kill":
            threading.Thread(target=_kill, args=(path, message[1]), daemon=True, name="store-kill").start()


def _session(text: str) -> Any:
    from chdb.session import Session

    try:
        return Session(text)  # type: ignore[no-untyped-call]
    except Exception as exc:  # noqa: BLE001 - whatever chDB raises becomes a StoreError
        raise StoreError.wrap(exc) from None


def _explains(statement: str) -> bool:
    return statement[:8].upper() == "EXPLAIN "


def _compressed(data: bytes, codec: str | None) -> bytes:
    """``data`` in an HTTP content coding (the libraries clickhouse-connect brings along)."""
    if codec in ("gzip", "deflate"):
        import gzip
        import zlib

        return gzip.compress(data) if codec == "gzip" else zlib.compress(data)
    if codec == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor().compress(data))
    if codec in ("lz4", "lz4_frame"):
        import lz4.frame

        return bytes(lz4.frame.compress(data))
    if codec in ("xz", "bz2"):
        import bz2
        import lzma

        return lzma.compress(data) if codec == "xz" else bz2.compress(data)
    return data  # br, snappy: no library here; EXPLAIN's answer goes out as it is


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _one(conn: Connection, lock: threading.Lock, path: str, key: int, request: Request) -> None:
    session: Any = None
    answer: tuple[str, int, Any]
    try:
        session = _session(session_string(path, request.database, request.settings))
        run = wrap_run(session)
        statement, fmt = prepare(run, request)
        compression = f" COMPRESSION '{request.compression}'" if request.compression else ""
        read_end, write_end = os.pipe()
        text = (f"/* {MARKER}{request.query_id} */ {statement} INTO OUTFILE '/dev/fd/{write_end}' TRUNCATE{compression} "
                f"FORMAT {fmt}")
        try:
            with lock:
                conn.send(("begin", key, fmt))
                reduction.send_handle(conn, read_end, 0)
        finally:
            os.close(read_end)
        try:
            if _explains(statement):  # EXPLAIN takes an INTO OUTFILE as part of what it explains: its small answer is
                _write_all(write_end, _compressed(run(statement, request.params, fmt), request.compression))  # written here
            else:
                session.query(text, "CSV", params=dict(request.params) or None)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever chDB raises becomes a StoreError
            raise StoreError.wrap(exc) from None
        finally:
            os.close(write_end)
        answer = ("end", key, None)
    except StoreError as exc:
        answer = ("error", key, (exc.message, exc.code))
    except Exception as exc:  # noqa: BLE001 - a bug of ours: still an answer, never a hang
        answer = ("error", key, (f"{type(exc).__name__}: {exc}", 0))
    finally:
        if session is not None:
            session.close()
    try:
        with lock:
            conn.send(answer)
    except (EOFError, OSError):
        pass


def prepare(run: Any, request: Request) -> tuple[str, str]:
    """The statement to run (ClickHouse's formatting, FORMAT taken off, read-only checked)
    and its output format (the query's FORMAT, else the request's default).

    Raises:
        StoreError: not one read (code 164), a syntax error, an unknown format (code 73).
    """
    formatted = check_read(run, request.sql, request.params)
    statement, fmt = split_format(formatted, request.default_format)
    if statement != formatted:
        check_read(run, statement, request.params)
    rows = parse_json(run("SELECT name FROM system.formats WHERE is_output AND lower(name) = lower({f:String})", {"f": fmt}, "JSON"))["rows"]
    if not rows:
        raise StoreError(f"Code: 73. DB::Exception: Unknown output format {fmt}: name one ClickHouse writes "
                         "(TabSeparated, CSVWithNames, JSON, JSONEachRow, Parquet, Arrow, Native...). (UNKNOWN_FORMAT)",
                         UNKNOWN_FORMAT_CODE)
    return statement, str(rows[0]["name"])


def _kill(path: str, query_id: str) -> None:
    try:
        session = _session(f"{path}?readonly=1")
    except StoreError:
        return
    try:
        session.query("KILL QUERY WHERE position(query, {m:String}) > 0 ASYNC", "CSV",
                      params={"m": f"/* {MARKER}{query_id} */"})
    except Exception:  # noqa: BLE001 - best effort: the query finished meanwhile, or the engine is closing
        pass
    finally:
        session.close()


# --- in the store's process -------------------------------------------------------------------
class Reading(Protocol):
    """What a cursor reads: an :class:`Answer` here, or a server's (:mod:`.serverread`)."""

    format: str

    def chunks(self, size: int = READ_BYTES) -> AsyncGenerator[bytes, None]: ...
    def cancel(self) -> None: ...


class Answer:
    """A running read: its ``format``, its bytes (:meth:`chunks`), :meth:`cancel`."""

    def __init__(self, results: Results, key: int, request: Request, fmt: str, fd: int,
                 ended: asyncio.Future[None]) -> None:
        self._results = results
        self._key = key
        self.request = request
        self.format = fmt
        self._fd: int | None = fd
        self._ended = ended
        self._transport: asyncio.BaseTransport | None = None
        self.bytes = 0

    async def chunks(self, size: int = READ_BYTES) -> AsyncGenerator[bytes, None]:
        """The answer's bytes as ClickHouse wrote them; at the end, the query's error if it failed.

        Raises:
            StoreError: ClickHouse's error (after the bytes it wrote before it).
        """
        assert self._fd is not None, "an answer is read once"
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=size * 2)
        pipe = os.fdopen(self._fd, "rb", buffering=0)
        self._fd = None
        self._transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            while True:
                data = await reader.read(size)
                if not data:
                    break
                self.bytes += len(data)
                yield data
            await self._ended
        finally:
            self._transport.close()

    def cancel(self) -> None:
        """Stop the query (idempotent): the pipe closes and ClickHouse kills it."""
        if self._ended.done():
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            return
        if self._transport is not None:
            self._transport.close()
        elif self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._results.kill(self.request.query_id)


class Results:
    """The store's end of chDB's read channel: many reads at once, each a future."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._send = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], asyncio.Future[None]]] = {}
        self._closed = False
        threading.Thread(target=self._dispatch, daemon=True, name="store-results").start()

    async def open(self, request: Request) -> Answer:
        """Start ``request``; returns once ClickHouse accepted it (the guard passed, the format is known).

        Raises:
            StoreError: the guard's refusal or ClickHouse's error, before any byte.
            Unavailable: chDB's process is gone.
        """
        loop = asyncio.get_running_loop()
        key = next(self._ids)
        begun: asyncio.Future[Any] = loop.create_future()
        ended: asyncio.Future[None] = loop.create_future()
        ended.add_done_callback(lambda f: f.exception())  # read when it matters; never "never retrieved"
        self._waiting[key] = (loop, begun, ended)
        self._post(("open", key, request))
        try:
            fmt, fd = await begun
        except asyncio.CancelledError:
            self._waiting.pop(key, None)
            self.kill(request.query_id)
            raise
        return Answer(self, key, request, fmt, fd, ended)

    def kill(self, query_id: str) -> None:
        try:
            self._post(("kill", query_id))
        except Unavailable:
            pass

    def _post(self, message: tuple[Any, ...]) -> None:
        if self._closed:
            raise Unavailable("the store's chDB process exited; it is started again on the next statement")
        try:
            with self._send:
                self._conn.send(message)
        except (OSError, EOFError):
            raise Unavailable("the store's chDB process exited; it is started again on the next statement") from None

    def _dispatch(self) -> None:
        while True:
            try:
                kind, key, value = self._conn.recv()
                fd = reduction.recv_handle(self._conn) if kind == "begin" else None
            except (EOFError, OSError):
                break
            entry = self._waiting.get(key) if kind == "begin" else self._waiting.pop(key, None)
            if entry is None:
                if fd is not None:
                    os.close(fd)  # its caller gave up
                continue
            loop, begun, ended = entry
            if kind == "begin":
                loop.call_soon_threadsafe(_settle, begun, (value, fd), None, fd)
                continue
            error = None if kind == "end" else StoreError(value[0], value[1])
            loop.call_soon_threadsafe(_settle, begun, None, error, None)
            loop.call_soon_threadsafe(_settle, ended, None, error, None)
        self._closed = True
        gone = Unavailable("the store's chDB process exited while reading; ask again")
        for loop, begun, ended in self._waiting.values():
            for future in (begun, ended):
                loop.call_soon_threadsafe(_settle, future, None, gone, None)
        self._waiting.clear()

    def close(self) -> None:
        self._conn.close()


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None, fd: int | None) -> None:
    if future.done():
        if fd is not None:
            os.close(fd)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


__all__ = ["DEFAULT_FORMAT", "READ_BYTES", "Answer", "Reading", "Request", "Results", "prepare", "serve", "session_string", "split_format"]
