"""Pull requests on a JetStream consumer, spoken by hand: the one primitive under band's
durable listeners (:mod:`.durable`) and the store's writer (:mod:`band.store.pull`).

nats-py's ``fetch`` waits for each message separately (a task and a timer per message)
and probes with ``no_wait`` before it waits. Here one ``$JS.API.CONSUMER.MSG.NEXT``
request asks for a batch, its replies come on ``<inbox>.<n>`` (``n`` counts requests: a
status names its request by that subject, so an old request's never ends the current
one; an event carries its own subject and counts against the open request), and the
subscription's callback hands each message on as it arrives. A request ends when JetStream has sent all it asked
for, or answers with a status (408: expired; 409: too many waiting requests, or the
consumer changed), or the caller gives it up (a reconnect can lose a request silently).
Messages that arrive for a request given up are handed on as ``late``: nothing delivered
is dropped here; what is never acked JetStream delivers again after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from .. import wire

__all__ = ["Deliver", "PullRequests"]

Deliver = Callable[[Msg, bool], Awaitable[None]]  # (message, late) -> started or kept


class PullRequests:
    """One pull request at a time on ``durable`` of ``stream``; messages go to ``deliver``."""

    def __init__(self, nc: Client, durable: str, deliver: Deliver, *, stream: str = wire.STREAM,
                 pending_limit: int = 65536) -> None:
        self._nc = nc
        self._subject = wire.pull_subject(durable, stream)
        self._deliver = deliver
        self._pending_limit = pending_limit
        self._inbox = ""
        self._sub: Any = None
        self._sent = 0  # requests sent; the current one's replies come on <inbox>.<sent>
        self._owed = 0  # messages the current request may still bring
        self._ended: asyncio.Future[str] | None = None  # "" used up, else the status that ended it

    async def start(self) -> PullRequests:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox + ".*", cb=self._arrived, pending_msgs_limit=self._pending_limit,
                                             pending_bytes_limit=-1)
        return self

    @property
    def owed(self) -> int:
        """Messages the last request did not bring (so far, while it is open): a caller that
        reserved room for a batch gives this much back once the request ended."""
        return self._owed

    @property
    def open(self) -> bool:
        return self._ended is not None and not self._ended.done()

    async def pull(self, batch: int, expires_s: float) -> asyncio.Future[str]:
        """Ask for up to ``batch`` messages, held ``expires_s`` by the server; the future
        says how the request ended. A request still open is given up first."""
        self.give_up()
        self._sent += 1
        self._owed = batch
        self._ended = ended = asyncio.get_running_loop().create_future()
        request = json.dumps({"batch": batch, "expires": int(expires_s * 1e9)}).encode()
        try:
            await self._nc.publish(self._subject, request, reply=f"{self._inbox}.{self._sent}")
        except BaseException:
            self.give_up()
            raise
        return ended

    def give_up(self) -> None:
        """Stop counting on the current request: what it still brings comes as ``late``."""
        self._end("")

    def _end(self, status: str) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(status)

    async def _arrived(self, msg: Msg) -> None:
        status = msg.headers.get(wire.STATUS_HEADER) if msg.headers and not msg.data else None
        if status is not None:  # a status comes on its request's own inbox: an old one's is ignored
            if status != wire.HEARTBEAT_STATUS and msg.subject == f"{self._inbox}.{self._sent}":
                self._end(status)  # anything but a heartbeat ends the request
            return
        # an event carries its own subject, not the inbox: it belongs to the open request
        # while that still owes events, else it comes late from one given up
        current = self.open and self._owed > 0
        if current:
            self._owed -= 1
            if self._owed <= 0:
                self._end("")
        await self._deliver(msg, not current)

    async def close(self, drain: bool) -> None:
        """Stop receiving: ``drain`` hands on what has arrived first (the connection is up)."""
        self.give_up()
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await (sub.drain() if drain else sub.unsubscribe())
            except Exception:  # noqa: BLE001 - a closed connection took the subscription with it
                pass
