"""Batches for the store's writer from its durable pull consumer.

One pull request asks for a whole batch (:class:`band._runtime.pull.PullRequests`, the
pull primitive durable listeners use too); the messages it brings, and any a request
given up for lost brings late, are kept in arrival order, and the writer takes what has
arrived when the batch is full or the request has ended. Nothing delivered is dropped
here: what is never acked JetStream delivers again after ``ack_wait``.
"""

from __future__ import annotations

import asyncio

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from .._runtime.pull import PullRequests

__all__ = ["GRACE_S", "Puller"]

GRACE_S = 1.0  # past a request's own expiry before we stop waiting for its answer


class Puller:
    """Pulls batches of ``durable`` on ``stream`` for one writer."""

    def __init__(self, nc: Client, stream: str, durable: str, *, pending_limit: int) -> None:
        self._nc = nc
        self._stream = stream
        self._requests = PullRequests(nc, durable, self._arrived, stream=stream, pending_limit=pending_limit)
        self._ready: list[Msg] = []
        self._want = 0  # wake the writer once this many are ready
        self._first_at = 0.0
        self.oldest = 0.0  # loop time the oldest message of the last fetch arrived: a batch's age starts there
        self._changed = asyncio.Event()
        self._stopping = False  # the writer stops: a request the connection lost is not waited out

    async def start(self) -> Puller:
        await self._requests.start()
        return self

    async def _arrived(self, msg: Msg, late: bool) -> None:
        if not self._ready:
            self._first_at = asyncio.get_running_loop().time()
        self._ready.append(msg)
        if len(self._ready) >= self._want or not self._requests.open:
            self._changed.set()

    async def fetch(self, room: int, timeout: float) -> list[Msg]:
        """Up to ``room`` messages: once that many have arrived, or once the request
        ends after ``timeout`` (then maybe none)."""
        loop = asyncio.get_running_loop()
        self._want = room
        ended: asyncio.Future[str] | None = None
        if not self._requests.open and len(self._ready) < room:
            ended = await self._requests.pull(room - len(self._ready), timeout)
        deadline = loop.time() + timeout + GRACE_S
        while self._requests.open and len(self._ready) < room:
            left = deadline - loop.time()
            if left <= 0 or (self._stopping and not self._nc.is_connected):
                self._requests.give_up()  # lost (a reconnect): ask again next time
                break
            self._changed.clear()
            waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._changed.wait())]
            if ended is not None:
                waits.append(ended)  # type: ignore[arg-type]
            try:
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waits[0].cancel()
        taken, self._ready = self._ready[:room], self._ready[room:]
        self.oldest = self._first_at if taken else loop.time()
        if self._ready:
            self._first_at = loop.time()
        return taken

    @property
    def epoch(self) -> int:
        """How many times the connection has been re-established: after a reconnect the
        server may be one that restarted, with its consumers' ack state rolled back."""
        return int(self._nc.stats["reconnects"])

    async def last_seq(self) -> int | None:
        """The stream's last sequence, or None when JetStream does not answer now."""
        try:
            info = await self._nc.jetstream().stream_info(self._stream)
        except (TimeoutError, nats.errors.Error):  # reconnecting, JetStream still starting: do without
            return None
        return int(info.state.last_seq)

    def stopping(self) -> None:
        """The writer stops. A request still open is waited out while the connection is
        up (JetStream ends it within its expiry); with the connection down no server
        holds it, so the fetch ends now instead of at its deadline."""
        self._stopping = True
        self._changed.set()

    async def unsubscribe(self) -> None:
        await self._requests.close(drain=False)
