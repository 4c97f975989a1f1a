"""A read of any size from a ClickHouse server (``CLICKHOUSE_URL``), for ``store.stream``.

The embedded store reads answers through a pipe (:mod:`.results`); a server sends them
over HTTP, and clickhouse-connect's ``raw_stream`` hands the body out as it arrives.
Its reads block, so they run in a thread of their own, which reads a chunk only when the
bounded hand-over (:data:`QUEUE_CHUNKS`) has room: a caller that stops asking stops the
reads from the server, and the store holds a few chunks whatever the answer's size.

- The statement is checked and run as :mod:`.results` does (:func:`.results.prepare`:
  the read-only guard on ClickHouse's own formatting of it, FORMAT taken off), on a
  client of its own with ``readonly=1`` and the store's database as its default.
- Cancelling (the caller went away, or the cursor idled out) stops the thread at its
  next read; it closes the response and the client, and ClickHouse sees the connection
  close.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from typing import Any

from .backend import ServerBackend, StoreError
from .results import READ_BYTES, Request, prepare

QUEUE_CHUNKS = 4  # chunks read from the server ahead of the caller, at most
_POLL_S = 0.5  # how soon a thread waiting for room sees a cancel


def open_answer(backend: ServerBackend, request: Request) -> ServerAnswer:
    """Start ``request`` on the server (blocks: run it in a thread); returns once ClickHouse
    accepted it.

    Raises:
        StoreError: the guard's refusal (code 164), ClickHouse's error, or
            :class:`.backend.Unavailable` when the server cannot be reached.
    """
    client, run = backend.reader(request.database)
    try:
        statement, fmt = prepare(run, request)
        try:
            source = client.raw_stream(statement, parameters=dict(request.params), fmt=fmt)
        except Exception as exc:  # noqa: BLE001 - whatever clickhouse-connect raises becomes a StoreError
            raise backend.error_of(exc) from None
    except BaseException:
        client.close()
        raise
    return ServerAnswer(backend, request, fmt, source, client)


class ServerAnswer:
    """A running read on a server, with :class:`.results.Answer`'s surface: ``format``,
    its bytes (:meth:`chunks`), :meth:`cancel`."""

    def __init__(self, backend: ServerBackend, request: Request, fmt: str, source: Any, client: Any) -> None:
        self.request = request
        self.format = fmt
        self.bytes = 0  # handed to the caller
        self.read_chunks = 0  # read from the server
        self._backend = backend
        self._source = source
        self._client = client
        self._room = threading.Semaphore(QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._closing = threading.Lock()
        self._closed = False
        self._handed: asyncio.Queue[bytes | StoreError | None] = asyncio.Queue()
        self._thread: threading.Thread | None = None

    @property
    def closed(self) -> bool:
        """The response and the client are closed (the read ended or was cancelled)."""
        return self._closed

    async def chunks(self, size: int = READ_BYTES) -> AsyncGenerator[bytes, None]:
        """The answer's bytes as the server sent them; at the end, the query's error if it failed.

        Raises:
            StoreError: ClickHouse's error, or :class:`.backend.Unavailable` for a lost connection.
        """
        assert self._thread is None, "an answer is read once"
        self._thread = threading.Thread(target=self._pump, args=(asyncio.get_running_loop(), size), daemon=True,
                                        name="store-server-read")
        self._thread.start()
        try:
            while True:
                item = await self._handed.get()
                self._room.release()
                if item is None:
                    return
                if isinstance(item, StoreError):
                    raise item
                self.bytes += len(item)
                yield item
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop reading (idempotent): the thread closes the response at its next read."""
        self._stop.set()
        if self._thread is None:  # never read: nothing else holds the response
            self._close()

    # --- in the reading thread -------------------------------------------------------------
    def _pump(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        try:
            while self._wait_for_room():
                item = self._read(size)
                try:
                    loop.call_soon_threadsafe(self._handed.put_nowait, item)
                except RuntimeError:  # the loop is closed: nobody reads any more
                    return
                if not isinstance(item, bytes):
                    return
        finally:
            self._close()

    def _wait_for_room(self) -> bool:
        while not self._room.acquire(timeout=_POLL_S):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    def _read(self, size: int) -> bytes | StoreError | None:
        try:
            data: bytes = self._source.read(size)
        except Exception as exc:  # noqa: BLE001 - a failure mid-answer goes to the caller as a StoreError
            return self._backend.error_of(exc)
        if not data:
            return None
        self.read_chunks += 1
        return data

    def _close(self) -> None:
        with self._closing:
            if self._closed:
                return
            self._closed = True
        for part in (self._source, self._client):
            try:
                part.close()
            except Exception:  # noqa: BLE001 - best-effort close: must never raise
                pass


__all__ = ["QUEUE_CHUNKS", "ServerAnswer", "open_answer"]
