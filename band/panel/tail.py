"""The live tail: events as they pass, to browsers over a WebSocket, sampled past a rate.

One core subscription on ``in.>`` (made while at least one browser watches) feeds every
socket. Each socket has its filters (key prefix, uid) and a budget of events per second;
past it, events are counted but not sent, and once a second the socket gets
``{"type": "stats", "seen": n, "sent": m}`` so the page can say it samples. The events
are sent whole, as the stream holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .. import wire

QUEUE = 256  # frames waiting for a slow browser before new ones are dropped


@dataclass(eq=False)  # identity: one per socket, kept in a set
class Watcher:
    """One browser's socket and what it asked to see."""

    socket: web.WebSocketResponse
    rate: int
    prefix: str = ""
    uid: str = ""
    paused: bool = False
    seen: int = 0
    sent: int = 0
    budget_second: int = 0
    budget_used: int = 0
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE))

    def wants(self, subject: str) -> bool:
        return not self.paused and (not self.prefix or wire.key_matches(self.prefix, subject))

    def offer(self, frame: str) -> None:
        """Queue ``frame`` if this second's budget allows; otherwise only count it."""
        second = int(time.monotonic())
        if second != self.budget_second:
            self.budget_second, self.budget_used = second, 0
        if self.budget_used >= self.rate:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return
        self.budget_used += 1
        self.sent += 1


class Tail:
    """Fans ``in.>`` out to every watching socket."""

    def __init__(self, nc: Client, rate: int) -> None:
        self._nc = nc
        self._rate = rate
        self._watchers: set[Watcher] = set()
        self._sub: Subscription | None = None
        self.total_seen = 0

    async def _on_event(self, msg: Msg) -> None:
        self.total_seen += 1
        frame: str | None = None
        for watcher in self._watchers:
            if not watcher.wants(msg.subject):
                continue
            if watcher.uid and f'"uid":"{watcher.uid}"'.encode() not in msg.data.replace(b'": "', b'":"'):
                continue
            watcher.seen += 1
            if watcher.budget_used >= watcher.rate and int(time.monotonic()) == watcher.budget_second:
                continue  # sampled out: no need to build the frame
            if frame is None:
                try:
                    event: Any = json.loads(msg.data)
                except (UnicodeDecodeError, ValueError):
                    event = {"raw": msg.data.decode("utf-8", "replace")}
                frame = json.dumps({"type": "event", "subject": msg.subject, "at": time.time(), "event": event}, ensure_ascii=False)
            watcher.offer(frame)

    async def _join(self, watcher: Watcher) -> None:
        self._watchers.add(watcher)
        if self._sub is None:
            self._sub = await self._nc.subscribe(wire.EVENTS_SUBJECTS, cb=self._on_event, pending_msgs_limit=100_000)

    async def _leave(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        if not self._watchers and self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - best-effort cleanup: a closed connection took it already
                pass

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The WebSocket: the browser sends ``{"prefix", "uid", "paused"}`` to change filters."""
        socket = web.WebSocketResponse(heartbeat=20)
        await socket.prepare(request)
        watcher = Watcher(socket, self._rate, prefix=request.query.get("prefix", ""), uid=request.query.get("uid", ""))
        await self._join(watcher)
        await socket.send_json({"type": "hello", "rate": self._rate, "subject": wire.EVENTS_SUBJECTS})
        sender = asyncio.get_running_loop().create_task(self._send(watcher))
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    change = json.loads(message.data)
                except ValueError:
                    continue
                if isinstance(change, dict):
                    watcher.prefix = str(change.get("prefix", watcher.prefix) or "").strip()
                    watcher.uid = str(change.get("uid", watcher.uid) or "").strip()
                    watcher.paused = bool(change.get("paused", watcher.paused))
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await self._leave(watcher)
        return socket

    async def close_all(self) -> None:
        """Send every socket a close frame (1001, going away): the panel is stopping.

        Their handlers then end at once, instead of holding the shutdown until the
        server gives up on them."""
        for watcher in list(self._watchers):
            with contextlib.suppress(ConnectionError, RuntimeError):  # a socket the browser already dropped
                await watcher.socket.close(code=WSCloseCode.GOING_AWAY, message=b"panel shutting down")

    async def _send(self, watcher: Watcher) -> None:
        """Frames as they come, and the sampling counts once a second."""
        loop = asyncio.get_running_loop()
        next_stats = loop.time() + 1.0
        while not watcher.socket.closed:
            try:
                async with asyncio.timeout(max(next_stats - loop.time(), 0.01)):  # not wait_for: it can drop a cancel
                    frame = await watcher.queue.get()
                await watcher.socket.send_str(frame)
            except TimeoutError:
                pass
            if loop.time() >= next_stats:
                next_stats = loop.time() + 1.0
                await watcher.socket.send_json({"type": "stats", "seen": watcher.seen, "sent": watcher.sent, "rate": watcher.rate})
                watcher.seen = watcher.sent = 0


__all__ = ["Tail", "Watcher"]
