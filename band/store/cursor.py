"""``store.stream``'s store side: a read of any size, handed out over NATS chunk by chunk.

The caller pulls (wire: ``band.rpc.store.next.<instance>``), so the store holds at most
the chunk being cut and the pipe's buffer (:mod:`.results`), or a few chunks read ahead
from a ClickHouse server (:mod:`.serverread`), whatever the answer's size; a caller that
stops asking leaves its query blocked, then cancelled after ``STREAM_IDLE_S``. Chunks are rows as JSON arrays, one a line, exactly as ClickHouse
writes ``JSONCompactEachRow``: the store cuts at line ends and never parses a row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from .. import wire
from .backend import StoreError
from .results import Reading

FORMAT = "JSONCompactEachRowWithNamesAndTypes"


class Cursor:
    """One open read: its columns, then chunks of whole lines."""

    def __init__(self, answer: Reading) -> None:
        self.id = uuid.uuid4().hex
        self.answer = answer
        self._chunks: AsyncGenerator[bytes, None] = answer.chunks()
        self._buffer = bytearray()
        self._ended = False
        self.columns: list[dict[str, str]] = []
        self.touched = asyncio.get_running_loop().time()
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        """Read the two header lines (names, types)."""
        lines: list[bytes] = []
        while len(lines) < 2:
            cut = self._buffer.find(b"\n")
            if cut >= 0:
                lines.append(bytes(self._buffer[:cut]))
                del self._buffer[:cut + 1]
            elif not await self._fill():
                break
        if len(lines) == 2:
            names, types = wire.decode(lines[0]), wire.decode(lines[1])
            self.columns = [{"name": n, "type": t} for n, t in zip(names, types, strict=False)]

    async def _fill(self) -> bool:
        if self._ended:
            return False
        try:
            self._buffer += await anext(self._chunks)
            return True
        except StopAsyncIteration:
            self._ended = True
            return False

    async def next(self, limit: int) -> tuple[bytes, bool]:
        """Whole lines, at most ``limit`` bytes, and whether they are the last.

        Raises:
            StoreError: ClickHouse's error, or one row larger than ``limit`` (code 413).
        """
        self.touched = asyncio.get_running_loop().time()
        while len(self._buffer) < limit and await self._fill():
            pass
        if self._ended and len(self._buffer) <= limit:
            out = bytes(self._buffer)
            self._buffer.clear()
            return out, True
        cut = self._buffer.rfind(b"\n", 0, limit)
        if cut < 0:
            raise StoreError(f"one row is over {limit} bytes, more than a NATS message: select fewer or shorter "
                             "columns", 413)
        out = bytes(self._buffer[:cut + 1])
        del self._buffer[:cut + 1]
        return out, False

    async def close(self) -> None:
        self.answer.cancel()
        await self._chunks.aclose()


class Cursors:
    """The store's open cursors; idle ones are closed."""

    def __init__(self) -> None:
        self.open: dict[str, Cursor] = {}

    def add(self, cursor: Cursor) -> None:
        self.open[cursor.id] = cursor

    async def chunk(self, cursor_id: Any, limit: int) -> tuple[bytes, bool]:
        cursor = self.open.get(cursor_id) if isinstance(cursor_id, str) else None
        if cursor is None:
            raise StoreError(f"no open cursor {cursor_id!r} (it ended, or nobody asked for it for "
                             f"{wire.STREAM_IDLE_S:.0f} s): run the query again", 404)
        async with cursor.lock:  # the caller may ask ahead; chunks go out in order
            try:
                data, last = await cursor.next(limit)
            except BaseException:
                self.open.pop(cursor.id, None)
                await cursor.close()
                raise
        if last:
            self.open.pop(cursor.id, None)
            await cursor.close()
        return data, last

    async def sweep(self) -> None:
        """Close cursors idle for ``STREAM_IDLE_S`` (run every few seconds)."""
        now = asyncio.get_running_loop().time()
        for cursor in [c for c in self.open.values() if now - c.touched > wire.STREAM_IDLE_S and not c.lock.locked()]:
            self.open.pop(cursor.id, None)
            await cursor.close()

    async def close(self) -> None:
        for cursor in list(self.open.values()):
            await cursor.close()
        self.open.clear()


__all__ = [
    "FORMAT",
    "Cursor",
    "Cursors",
]
