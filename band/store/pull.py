"""Batches from a durable pull consumer, pulled by hand.

nats-py's ``fetch`` waits for each message separately (a task and a timer per message),
which cost the store about as much as building its rows. Here one
``$JS.API.CONSUMER.MSG.NEXT`` request asks for a whole batch, the replies land on one
long-lived inbox subscription whose callback only appends them to a list, and the
writer takes what has arrived when the batch is full or the request has ended.

A request ends when JetStream has sent all it asked for, answers with a status (408:
it expired; 409: too many waiting requests or the consumer changed), or our own
deadline passes (a reconnect can lose a request silently). Messages that arrive late,
for a request already given up, are kept for the next batch: nothing delivered is
dropped here; what is never acked JetStream delivers again after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from .. import wire

GRACE_S = 1.0  # past a request's own expiry before we stop waiting for its answer


class Puller:
    """Pulls batches of ``durable`` on ``stream`` for one writer."""

    def __init__(self, nc: Client, stream: str, durable: str, *, pending_limit: int) -> None:
        self._nc = nc
        self._stream = stream
        self._subject = wire.pull_subject(durable, stream)
        self._inbox = nc.new_inbox()
        self._pending_limit = pending_limit
        self._sub: Any = None
        self._ready: list[Msg] = []
        self._owed = 0  # messages the open request may still bring
        self._open = False
        self._want = 0  # wake the writer once this many are ready
        self._first_at = 0.0
        self.oldest = 0.0  # loop time the oldest message of the last fetch arrived: a batch's age starts there
        self._changed = asyncio.Event()
        self._stopping = False  # the writer stops: a request the connection lost is not waited out

    async def start(self) -> Puller:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._arrived, pending_msgs_limit=self._pending_limit,
                                             pending_bytes_limit=-1)
        return self

    async def _arrived(self, msg: Msg) -> None:
        headers = msg.headers
        if headers and not msg.data and headers.get(wire.STATUS_HEADER):
            if headers[wire.STATUS_HEADER] != wire.HEARTBEAT_STATUS:  # anything but a heartbeat ends the request
                self._open = False
        else:
            if not self._ready:
                self._first_at = asyncio.get_running_loop().time()
            self._ready.append(msg)
            self._owed -= 1
            if self._owed <= 0:
                self._open = False
        if not self._open or len(self._ready) >= self._want:
            self._changed.set()

    async def fetch(self, room: int, timeout: float) -> list[Msg]:
        """Up to ``room`` messages: once that many have arrived, or once the request
        ends after ``timeout`` (then maybe none)."""
        loop = asyncio.get_running_loop()
        self._want = room
        if not self._open and len(self._ready) < room:
            self._owed = room - len(self._ready)
            self._open = True
            request = {"batch": self._owed, "expires": int(timeout * 1e9)}
            await self._nc.publish(self._subject, json.dumps(request).encode(), reply=self._inbox)
        deadline = loop.time() + timeout + GRACE_S
        while self._open and len(self._ready) < room:
            left = deadline - loop.time()
            if left <= 0 or (self._stopping and not self._nc.is_connected):
                self._open = False  # lost (a reconnect): ask again next time
                break
            self._changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                pass
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
        except (nats.errors.Error, asyncio.TimeoutError):  # reconnecting, JetStream still starting: do without
            return None
        return int(info.state.last_seq)

    def stopping(self) -> None:
        """The writer stops. A request still open is waited out while the connection is
        up (JetStream ends it within its expiry); with the connection down no server
        holds it, so the fetch ends now instead of at its deadline."""
        self._stopping = True
        self._changed.set()

    async def unsubscribe(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
