"""The edge's NATS link: it sends every request of a hit and owns every reply and deadline.

One subscription (``<inbox>.*``) receives the answers of every hit in flight —
enricher answers, handler replies, JetStream acks — and each goes by its token to the
request waiting for it, instead of a subscription or a request future per round trip.
Each wait ends at its deadline, kept by band's one deadline mechanism
(:class:`band.runtime.Deadlines`): a few timers for all hits, none armed between hits.

Three calls, for the pipeline's three steps: :meth:`Link.scatter` (one request, an answer
from each of several services, the enrich step), :meth:`Link.send` and :meth:`Link.reply`
(a request now, its reply later: the JetStream publish, whose ack is awaited after the
handler), :meth:`Link.request` (the two together: the handler).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import types
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from band import wire
from band.errors import BandError
from band.runtime import Deadlines

log = logging.getLogger("broker.link")

# A reply deadline fires at most 5 ms late: fine for deadlines of hundreds of milliseconds.
DEADLINE_SLOT_S = 0.005


@dataclass(slots=True)
class Reply:
    """One message on the inbox: body, headers (``None`` if none) and NATS status."""

    data: bytes
    headers: dict[str, str] | None
    status: str = ""  # "503" = no responders


class LinkDown(BandError, ConnectionError):
    """Not connected to NATS right now (the client keeps reconnecting)."""


class ReplyTimeout(BandError):
    """No reply within the request's deadline."""


class NoResponders(BandError):
    """Nobody subscribes to the request's subject (NATS status 503)."""


OnAnswer = Callable[[str, Reply], None]


class Request:
    """One request in flight: what :meth:`Link.reply` awaits and :meth:`Link.forget` drops."""

    __slots__ = ("future", "slot", "token")

    def __init__(self, token: str, future: asyncio.Future[Reply], slot: int) -> None:
        self.token = token
        self.future = future
        self.slot = slot

    def deliver(self, reply: Reply) -> None:
        if not self.future.done():
            self.future.set_result(reply)


class _Scatter:
    """One request answered by several services: who is expected, who answered."""

    __slots__ = ("answered", "done", "expected", "on_answer")

    def __init__(self, expected: frozenset[str], on_answer: OnAnswer, done: asyncio.Future[None]) -> None:
        self.expected = expected
        self.answered: set[str] = set()
        self.on_answer = on_answer
        self.done = done

    def deliver(self, reply: Reply) -> None:
        if self.done.done():
            return  # late: the hit went on without it
        if reply.status == wire.NO_RESPONDERS_STATUS:
            self.done.set_result(None)  # nobody subscribes any more: don't wait for the deadline
            return
        service = reply.headers.get(wire.SERVICE_HEADER) if reply.headers else None
        if not service or service in self.answered:
            return
        self.answered.add(service)
        try:
            self.on_answer(service, reply)
        finally:
            if self.expected <= self.answered:
                self.done.set_result(None)


class Link:
    """Requests and publishes for the pipeline over a nats-py connection; :meth:`connect`
    before use, :meth:`close` after."""

    def __init__(self, nc: Client, slot_s: float = DEADLINE_SLOT_S) -> None:
        self._nc = nc
        self.inbox = nc.new_inbox() + "."
        self._sub: Subscription | None = None
        self._sending: set[asyncio.Task[None]] = set()  # publishes in flight: referenced until done
        self._waiting: dict[str, Request | _Scatter] = {}
        self._tokens = itertools.count(1)
        self._deadlines = Deadlines(slot_s=slot_s)

    async def connect(self) -> None:
        self._sub = await self._nc.subscribe(self.inbox + "*", cb=self._cb)

    @property
    def is_connected(self) -> bool:
        return bool(self._nc.is_connected)

    @property
    def max_payload(self) -> int:
        return int(self._nc.max_payload)

    @property
    def armed_deadlines(self) -> int:
        """Deadline timers armed now; 0 between hits (a finished hit leaves none to fire)."""
        return self._deadlines.armed

    # --- requests -------------------------------------------------------------------
    def send(self, subject: str, payload: bytes, timeout: float, headers: Mapping[str, str] | None = None) -> Request:
        """Publish a request now; its deadline runs from now. Await it with :meth:`reply`,
        or :meth:`forget` it.

        Raises:
            LinkDown: not connected (nothing was sent).
        """
        token = str(next(self._tokens))
        self.publish(subject, payload, self.inbox + token, headers)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        request = Request(token, future, self._deadlines.fail(future, timeout, ReplyTimeout))
        self._waiting[token] = request
        return request

    async def reply(self, request: Request) -> Reply:
        """The reply to ``request``; forgets it either way.

        Raises:
            ReplyTimeout: none before its deadline.
            NoResponders: nobody subscribes to its subject.
        """
        try:
            reply = await request.future
        finally:
            self.forget(request)
        if reply.status == wire.NO_RESPONDERS_STATUS and not reply.data:
            raise NoResponders()
        return reply

    def forget(self, request: Request) -> None:
        """Stop waiting for ``request`` (answered, timed out, or its hit went away); idempotent."""
        self._waiting.pop(request.token, None)
        self._deadlines.release(request.future, request.slot)
        if not request.future.done():
            request.future.cancel()

    async def request(self, subject: str, payload: bytes, timeout: float, headers: Mapping[str, str] | None = None) -> Reply:
        """:meth:`send` and :meth:`reply` in one.

        Raises:
            LinkDown, ReplyTimeout, NoResponders: as those.
        """
        return await self.reply(self.send(subject, payload, timeout, headers))

    async def scatter(
        self, subject: str, payload: bytes, expected: frozenset[str], timeout: float, on_answer: OnAnswer, headers: Mapping[str, str] | None = None
    ) -> frozenset[str]:
        """One request that each of ``expected`` answers (by its ``Band-Service`` header):
        ``on_answer(service, reply)`` for each first answer as it arrives. Returns once all
        answered or nobody subscribes (nobody late), or at ``timeout``: who was late then.

        Raises:
            LinkDown: not connected (nothing was sent).
        """
        token = str(next(self._tokens))
        self.publish(subject, payload, self.inbox + token, headers)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        scatter = self._waiting[token] = _Scatter(expected, on_answer, done)
        slot = self._deadlines.fail(done, timeout, ReplyTimeout)
        try:
            await done
        except ReplyTimeout:
            return expected - scatter.answered
        finally:
            del self._waiting[token]
            self._deadlines.release(done, slot)
        return frozenset()

    # --- publishing -----------------------------------------------------------------
    def publish(self, subject: str, payload: bytes, reply: str = "", headers: Mapping[str, str] | None = None) -> None:
        """Queue a publish (nats-py buffers it; the flusher writes it on the next turn).

        Raises:
            LinkDown: not connected.
        """
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
        except Exception as exc:  # noqa: BLE001 - as from the task: logged, the hit's deadline answers the client
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
        waiting = self._waiting.get(msg.subject[len(self.inbox) :])
        if waiting is None:
            return  # late: its hit went on without it
        headers = dict(msg.headers) if msg.headers else None
        status = headers.get(wire.STATUS_HEADER, "") if headers else ""
        try:
            waiting.deliver(Reply(msg.data, headers, status))
        except Exception:
            log.exception("reply handler failed")

    async def close(self) -> None:
        """Drop every deadline, let the publishes in flight finish (bounded), then leave the inbox."""
        self._deadlines.close()
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=1.0)
        for task in self._sending:
            task.cancel()
        if self._sub is not None and not self._nc.is_closed:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - best-effort cleanup: the connection may be closing
                pass
        self._sub = None


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Run the rest of a coroutine that suspended on ``waiting`` (inside a task)."""
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # noqa: BLE001 - cancelled: hand it to the coroutine
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = coro.send(sent)
        except StopIteration:
            return


__all__ = ["DEADLINE_SLOT_S", "Link", "LinkDown", "NoResponders", "Reply", "ReplyTimeout", "Request"]
