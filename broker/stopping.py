"""The edge's stop on one clock: everything it waits for ends within ``shutdown_timeout_s``.

A stop waits for several things in turn: bodies still arriving, hits in the pipeline,
WebSockets closing, removing a cut upload's objects, draining NATS. Each had its own
timeout (a stalled upload alone waited its 30 s idle timeout, aiohttp then cut it at
the shutdown timeout, and the clean-up came on top), so a client that stops sending
held the edge past its limit. Here each part gets a share of one deadline set when the
stop begins:

- reading a body (a hit's or an upload's) ends ``READS_SHARE`` of the limit after the
  stop; a read still waiting then is answered ``503`` (send it again) and an upload's
  objects are removed;
- aiohttp waits ``HANDLERS_SHARE`` of the limit for in-flight hits, then cancels them;
- what remains (removing objects, draining NATS) is bounded by :meth:`Stopping.left`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

READS_SHARE = 0.4
HANDLERS_SHARE = 0.5


class Stopping:
    """When the stop began, and the body reads to cut short when it does."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._ends: float | None = None  # loop time by which everything is done
        self._reads: set[asyncio.Timeout] = set()

    @property
    def active(self) -> bool:
        return self._ends is not None

    def begin(self) -> None:
        """The stop began: reads under way end within their share of the limit."""
        if self._ends is not None:
            return
        now = asyncio.get_running_loop().time()
        self._ends = now + self.limit_s
        for read in self._reads:
            self._cut(read)

    def left(self, seconds: float) -> float:
        """``seconds``, or less while stopping: what is left of the limit (never below 0)."""
        if self._ends is None:
            return seconds
        return max(0.0, min(seconds, self._ends - asyncio.get_running_loop().time()))

    @contextlib.asynccontextmanager
    async def reading(self, seconds: float) -> AsyncIterator[asyncio.Timeout]:
        """``asyncio.timeout(seconds)`` for one read from a client, cut short by a stop.

        Raises:
            TimeoutError: the time ran out (while stopping, maybe before ``seconds``).
        """
        async with asyncio.timeout(seconds) as read:
            self._reads.add(read)
            try:
                if self._ends is not None:
                    self._cut(read)
                yield read
            finally:
                self._reads.discard(read)

    def _cut(self, read: asyncio.Timeout) -> None:
        assert self._ends is not None
        reads_end = self._ends - self.limit_s * (1 - READS_SHARE)
        when = read.when()
        if when is None or when > reads_end:
            read.reschedule(reads_end)


__all__ = ["HANDLERS_SHARE", "READS_SHARE", "Stopping"]
