"""A forgotten person's messages out of JetStream, by sequence, so no replay brings them back.

The store knows where their stored events came from (``stream_seq`` on every row);
what it has not stored yet (above the high-water mark) and their dead letters
(``BAND_DLQ``, the original event as the body) are read message by message
(``STREAM.MSG.GET``) and matched. A deleted message is unlinked (its bytes go when its
block ages out), or overwritten on disk with ``secure`` (the store's ``forget_erase``),
which costs about 8 ms a message and slows the stream meanwhile. The store's credential may delete messages of these
two streams and nothing else (nats.conf).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from .. import wire
from . import body

CONCURRENT = 64  # JetStream API requests in flight at once
REQUEST_TIMEOUT_S = 30.0  # a secure delete waits behind the others of its stream


async def _bounded(items: Iterable[int], each: Callable[[int], Awaitable[bool]]) -> int:
    """``each`` over ``items``, ``CONCURRENT`` at a time; how many returned true."""
    gate = asyncio.Semaphore(CONCURRENT)

    async def one(item: int) -> bool:
        async with gate:
            return await each(item)

    return sum(await asyncio.gather(*(one(i) for i in items)))


class DeleteFailed(Exception):
    """JetStream refused to delete a message (not because it was gone already)."""


async def delete(nc: Client, stream: str, seqs: Iterable[int], secure: bool = False) -> int:
    """Delete ``seqs`` from ``stream``; how many were there (one already gone is not counted).

    ``secure``: JetStream overwrites each message on disk (about 8 ms each on a file
    stream, one at a time); without it the bytes stay in their block, unreadable through
    any API, until the block ages out or is compacted.

    Raises:
        DeleteFailed: JetStream answered with another error than "no message found".
    """
    subject = f"{wire.JS_API}.STREAM.MSG.DELETE.{stream}"

    async def one(seq: int) -> bool:
        reply = await nc.request(subject, wire.encode({"seq": seq, "no_erase": not secure}), timeout=REQUEST_TIMEOUT_S)
        answer = wire.decode_object(reply.data)
        if answer.get("success"):
            return True
        error = answer.get("error") or {}
        if error.get("code") == 404:  # deleted already (by the writer, an earlier forget) or aged out
            return False
        raise DeleteFailed(f"JetStream did not delete message {seq} of {stream}: {error.get('description') or answer}")

    return await _bounded(sorted(set(seqs)), one)


async def scan(js: JetStreamContext, stream: str, first: int, last: int,
               match: Callable[[dict[str, Any]], bool]) -> list[int]:
    """The sequences from ``first`` to ``last`` whose event ``match``es."""
    found: list[int] = []

    async def one(seq: int) -> bool:
        try:
            raw = await js.get_msg(stream, seq)
        except NotFoundError:  # deleted, or aged out meanwhile
            return False
        try:
            message = body.load(raw.data or b"")
        except wire.DecodeError:
            return False
        if isinstance(message, dict) and match(message):
            found.append(seq)
            return True
        return False

    await _bounded(range(max(first, 1), last + 1), one)
    return sorted(found)


async def bounds(js: JetStreamContext, stream: str) -> tuple[int, int] | None:
    """``(first, last)`` sequence of ``stream``; ``None`` when it does not exist."""
    try:
        state = (await js.stream_info(stream)).state
    except NotFoundError:
        return None
    return int(state.first_seq or 0), int(state.last_seq or 0)


class Eraser:
    """Deletes, in the background, the events the writer dropped for a tombstone."""

    def __init__(self, nc: Client, secure: bool) -> None:
        self.nc = nc
        self.secure = secure
        self._tasks: set[asyncio.Task[int]] = set()

    def __call__(self, seqs: list[int]) -> None:
        if seqs:
            task = asyncio.get_running_loop().create_task(delete(self.nc, wire.STREAM, seqs, self.secure))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[int]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed delete leaves the message, which the next forget finds


__all__ = [
    "CONCURRENT",
    "REQUEST_TIMEOUT_S",
    "DeleteFailed",
    "Eraser",
    "bounds",
    "delete",
    "scan",
]
