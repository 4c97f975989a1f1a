"""The pipeline's NATS link: publish with a reply token, every reply on one wildcard inbox.

One subscription (``<inbox>.*``) receives the answers of every hit in flight —
enrichers, handlers, JetStream acks — and hands each to the pipeline by its token,
instead of a subscription or a request future per round trip.
"""

from __future__ import annotations

import asyncio
import logging
import types
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Generator, Mapping

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from band import wire
from band.errors import BandError

log = logging.getLogger("broker.link")


@dataclass(slots=True)
class Reply:
    """One message on the inbox: body, headers (``None`` if none) and NATS status."""

    data: bytes
    headers: dict[str, str] | None
    status: str = ""  # "503" = no responders


OnReply = Callable[[str, Reply], None]


class LinkDown(BandError, ConnectionError):
    """Not connected to NATS right now (the client keeps reconnecting)."""


class Link:
    """Publishes for the pipeline and routes replies by token, over a nats-py connection."""

    def __init__(self, nc: Client, on_reply: OnReply) -> None:
        self._nc = nc
        self._on_reply = on_reply
        self.inbox = nc.new_inbox() + "."
        self._sub: Subscription | None = None
        self._sending: set[asyncio.Task[None]] = set()  # publishes in flight: referenced until done

    async def connect(self) -> None:
        self._sub = await self._nc.subscribe(self.inbox + "*", cb=self._cb)

    @property
    def is_connected(self) -> bool:
        return bool(self._nc.is_connected)

    @property
    def max_payload(self) -> int:
        return int(self._nc.max_payload)

    def publish(self, subject: str, payload: bytes, reply: str = "", headers: Mapping[str, str] | None = None) -> None:
        """Queue a publish (nats-py buffers it; the flusher writes it on the next turn)."""
        if not self._nc.is_connected:
            raise LinkDown("NATS is not connected")
        coro = self._nc.publish(subject, payload, reply=reply, headers=dict(headers) if headers else None)
        # nats-py's publish only appends to its buffer and wakes the flusher: run it here,
        # without a task and a loop turn per publish; only if it suspends (its buffer is
        # full) does the rest become a task
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except Exception as exc:  # as from the task: logged, the hit's deadline answers the client
            log.warning("publish failed: %r", exc)
            return
        task = asyncio.ensure_future(_resume(coro, waiting))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        """A publish ended: forget it; a failure is logged (the hit's deadline answers the client)."""
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("publish failed: %r", task.exception())

    async def _cb(self, msg: Msg) -> None:
        headers = dict(msg.headers) if msg.headers else None
        status = headers.get(wire.STATUS_HEADER, "") if headers else ""
        try:
            self._on_reply(msg.subject[len(self.inbox) :], Reply(msg.data, headers, status))
        except Exception:
            log.exception("reply handler failed")

    async def close(self) -> None:
        """Let the publishes in flight finish (bounded), then leave the inbox."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=1.0)
        for task in self._sending:
            task.cancel()
        if self._sub is not None and not self._nc.is_closed:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
        self._sub = None


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Run the rest of a coroutine that suspended on ``waiting`` (inside a task)."""
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # cancelled: hand it to the coroutine
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = coro.send(sent)
        except StopIteration:
            return


__all__ = ["Link", "Reply", "LinkDown"]
