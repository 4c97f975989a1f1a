"""Request bodies in flight: one byte budget for the whole edge, and reading a body within it.

Each body the edge reads is held (its bytes, then the parsed fields, then the event
encoded for NATS) until its hit is answered, so without an overall bound N concurrent
1 MB POSTs cost N times a few MB whatever the per-request limit. The budget counts the
body bytes of the hits in flight: a hit reserves its ``Content-Length`` before reading a
byte (a chunked body reserves each chunk as it arrives) and gives it back when answered.
Past the budget the hit is refused at once, unread, with ``503`` and ``Retry-After``:
a refusal costs nothing to make, while queueing would hold the connections (and what
aiohttp buffers of each) for as long as the burst lasts.

A body is read into one buffer sized by ``Content-Length`` (no growing buffer, no copy to
``bytes`` as ``request.read()`` makes): memory per hit stays a small multiple of the body.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import math
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from aiohttp import web

from .stopping import Stopping

log = logging.getLogger("broker.bodies")

RELEASE_AFTER_BYTES = 8 * 1024 * 1024  # a burst of at least this much: give the freed memory back
RELEASE_DELAY_S = 0.5  # after a burst, when the bytes in flight are back to zero
RETRY_AFTER_S = 1  # bodies in flight are answered within the publish timeout: try again soon


class OverBudget(Exception):
    """The budget cannot take these bytes now (the hit answers 503)."""


class TooLarge(Exception):
    """A body over the per-request limit (the hit answers 413)."""


class BodyBudget:
    """Bytes of request bodies in flight, across every connection of this edge.

    ``on_idle`` runs when the bytes in flight drop back to zero after a burst of at
    least ``release_after`` bytes (the edge returns freed memory to the system then).
    """

    def __init__(self, limit: int, *, stopping: Stopping | None = None, release_after: int | None = None) -> None:
        self.limit = limit
        self.stopping = stopping if stopping is not None else Stopping(math.inf)
        self.used = 0
        self.peak = 0  # the most in flight since the last time it came back to zero
        self._release_after = RELEASE_AFTER_BYTES if release_after is None else release_after
        self._release_due = False

    def hold(self) -> Held:
        """A hit's share: empty until it takes bytes; given back when the ``with`` ends."""
        return Held(self)

    def _take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise OverBudget(f"the edge is busy: request bodies in flight are at their limit ({self.limit} bytes); try again in {RETRY_AFTER_S} s")
        self.used += n
        if self.used > self.peak:
            self.peak = self.used

    def _give(self, n: int) -> None:
        self.used -= n
        if self.used == 0 and self.peak >= self._release_after and not self._release_due:
            # a moment later: what the burst's hits published is still in the NATS client's buffers now
            self._release_due = True
            asyncio.get_running_loop().call_later(RELEASE_DELAY_S, self._release)

    def _release(self) -> None:
        self._release_due = False
        if self.used == 0:  # still idle: the burst is over
            self.peak = 0
            release_memory()


class Held:
    """The bytes one hit holds of the :class:`BodyBudget`."""

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.bytes = 0

    @property
    def stopping(self) -> bool:
        """The edge is stopping: a read that runs out of time was cut, not slow."""
        return self._budget.stopping.active

    def reading(self, seconds: float) -> AbstractAsyncContextManager[asyncio.Timeout]:
        """A deadline for reading this hit's body, cut short when the edge stops."""
        return self._budget.stopping.reading(seconds)

    def take(self, n: int) -> None:
        """Reserve ``n`` more bytes.

        Raises:
            OverBudget: the edge holds too many body bytes already.
        """
        self._budget._take(n)
        self.bytes += n

    def __enter__(self) -> Held:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.bytes:
            self._budget._give(self.bytes)
            self.bytes = 0


async def read_body(request: web.Request, held: Held, limit: int) -> bytearray:
    """The whole body of ``request``, reserved in ``held`` before (or as) it is read.

    Raises:
        TooLarge: over ``limit`` bytes (by ``Content-Length`` before reading, else as it arrives).
        OverBudget: the budget cannot take it; nothing more is read.
        aiohttp.http_exceptions.HttpProcessingError: the body ended early or is malformed.
    """
    stream = request.content
    length = request.content_length
    if length is not None:
        if length > limit:
            raise TooLarge(limit)
        held.take(length)
        buf = bytearray(length)
        at = 0
        with memoryview(buf) as view:
            while at < length and (chunk := await stream.readany()):
                view[at : at + len(chunk)] = chunk
                at += len(chunk)
        if at < length:  # the stream ended early without an error: what came is the body
            del buf[at:]
        return buf
    buf = bytearray()
    while chunk := await stream.readany():
        if len(buf) + len(chunk) > limit:
            raise TooLarge(limit)
        held.take(len(chunk))
        buf += chunk
    return buf


# --- giving freed memory back ---------------------------------------------------------
def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    """glibc's ``malloc_trim``, or ``None`` (musl, macOS: nothing to call)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM: list[ctypes._NamedFuncPointer | None] = []  # looked up on first use, not at import


def release_memory() -> None:
    """Return the heap's free pages to the system (glibc ``malloc_trim(0)``).

    glibc keeps what a burst of big bodies freed in its heap (its mmap threshold rises
    with the biggest block freed, so later megabyte buffers come from the heap, not from
    mmap), and the RSS stayed near its peak after the burst without this (measured in
    docs/edge.md). It costs about a millisecond, once per burst.
    """
    if not _TRIM:
        _TRIM.append(_malloc_trim())
    trim = _TRIM[0]
    if trim is not None:
        trim(0)


__all__ = ["RETRY_AFTER_S", "BodyBudget", "Held", "OverBudget", "TooLarge", "read_body", "release_memory"]
