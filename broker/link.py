"""The pipeline's NATS link: publish, and every reply on one wildcard inbox.

Why a link of its own: a hit costs two or three NATS round trips (enrich, handle,
JetStream ack), and with nats-py each reply goes through its general-purpose parser,
a ``Msg`` object and a per-subscription queue and task. :class:`LeanLink` speaks only
what the pipeline needs (CONNECT, PING/PONG, one SUB, PUB/HPUB, MSG/HMSG) on its own
connection, parses in ``data_received`` and hands each reply straight to the pipeline:
no task, queue or future per message. Discovery, JetStream management and WebSocket
push stay on nats-py. :class:`NatsPyLink` offers the same surface over a nats-py
connection, for setups the lean link does not speak (nkeys, credentials files).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import unquote, urlsplit

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger("broker.link")

_CRLF = b"\r\n"
_HDR_LINE = b"NATS/1.0"
_MAX_BACKLOG = 64 * 1024 * 1024  # unsent bytes before hits answer 503 instead of queueing more


@dataclass(slots=True)
class Reply:
    """One message on the inbox: body, headers (``None`` if none) and NATS status."""

    data: bytes
    headers: dict[str, str] | None
    status: str = ""  # "503" = no responders


OnReply = Callable[[str, Reply], None]


class LinkDown(ConnectionError):
    """Not connected to NATS right now (the link keeps reconnecting)."""


class Link(Protocol):
    """What the pipeline needs from NATS."""

    inbox: str

    @property
    def is_connected(self) -> bool: ...

    @property
    def max_payload(self) -> int: ...

    def publish(self, subject: str, payload: bytes, reply: str = "", headers: Mapping[str, str] | None = None) -> None: ...

    async def close(self) -> None: ...


def parse_headers(block: bytes) -> tuple[dict[str, str] | None, str]:
    """A NATS header block (``NATS/1.0[ status]\\r\\nKey: Value\\r\\n...``) → headers, status."""
    lines = block.decode("utf-8", "replace").split("\r\n")
    first = lines[0]
    status = first[9:12] if len(first) >= 12 and first[8] == " " else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    if status:
        headers.setdefault("Status", status)
    return (headers or None), status


def _new_inbox() -> str:
    return "_INBOX." + os.urandom(11).hex() + "."


class _Wire(asyncio.Protocol):
    """One TCP connection's bytes → the link (parsing stays in the link for speed)."""

    def __init__(self, link: "LeanLink") -> None:
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.link._parse(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.link._lost(self)


class LeanLink:
    """A minimal NATS client for the hot path; reconnects forever until closed."""

    def __init__(self, urls: tuple[str, ...] | list[str], on_reply: OnReply, *, name: str = "band-edge", reconnect_wait_s: float = 0.5, connect_timeout_s: float = 2.0, ping_interval_s: float = 20.0) -> None:
        self._urls = list(urls)
        self._on_reply = on_reply
        self._name = name
        self._reconnect_wait = reconnect_wait_s
        self._connect_timeout = connect_timeout_s
        self._ping_interval = ping_interval_s
        self.inbox = _new_inbox()
        self._prefix_len = len(self.inbox)
        self._wire: _Wire | None = None
        self._connected = False
        self._closing = False
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._pongs: list[asyncio.Future[None]] = []
        self._info: dict[str, Any] = {}
        self._msg: tuple[bytes, int, int] | None = None  # (subject, header bytes, total bytes) awaiting its payload
        self._tasks: list[asyncio.Task[None]] = []
        self._outstanding_pings = 0
        self._info_waiter: asyncio.Future[None] | None = None
        self._backlog = 0  # bytes the transport could not send yet, as of the last flush

    # --- public ---------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def max_payload(self) -> int:
        return int(self._info.get("max_payload", 1024 * 1024))

    async def connect(self) -> None:
        """Connect to the first server that answers; then keep connected in the background.

        Raises:
            ConnectionError: no server accepted the connection.
        """
        await self._connect_any()
        self._tasks.append(asyncio.create_task(self._supervise()))

    def publish(self, subject: str, payload: bytes, reply: str = "", headers: Mapping[str, str] | None = None) -> None:
        """Queue a PUB/HPUB; every queued command of one loop turn goes out in one write.

        Raises:
            LinkDown: not connected.
        """
        if not self._connected:
            raise LinkDown("NATS link is down")
        if self._backlog > _MAX_BACKLOG:
            raise LinkDown("NATS link backlog is full (the server does not keep up)")
        if len(payload) > self.max_payload:  # the server would close the connection
            raise ValueError(f"payload of {len(payload)} bytes exceeds the server's max_payload")
        if headers:
            hdr = _HDR_LINE + _CRLF + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + _CRLF
            head = f"HPUB {subject} {reply} {len(hdr)} {len(hdr) + len(payload)}\r\n".encode()
            self._out += (head, hdr, payload, _CRLF)
        else:
            self._out += (f"PUB {subject} {reply} {len(payload)}\r\n".encode(), payload, _CRLF)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        wire = self._wire
        if wire is not None and wire.transport is not None:
            self._flush()
            wire.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(wire.lost), 1.0)
            except asyncio.TimeoutError:
                wire.transport.abort()
        self._connected = False

    # --- connection -----------------------------------------------------------------
    async def _connect_any(self) -> None:
        errors = []
        for url in self._urls:
            try:
                await asyncio.wait_for(self._connect(url), self._connect_timeout)
                return
            except (OSError, asyncio.TimeoutError, ConnectionError, ValueError) as exc:
                errors.append(f"{url}: {exc!r}")
        raise ConnectionError("; ".join(errors) or "no NATS server given")

    async def _connect(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        loop = asyncio.get_running_loop()
        self._info = {}
        self._msg = None
        self._info_waiter = loop.create_future()
        transport, wire = await loop.create_connection(lambda: _Wire(self), host, port)
        self._wire = wire
        await self._info_waiter  # the server speaks first
        if self._info.get("tls_required") or parts.scheme == "tls":
            ctx = ssl.create_default_context()
            tls = await loop.start_tls(transport, wire, ctx, server_hostname=host)
            wire.transport = tls
        connect: dict[str, Any] = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "lang": "python-band-edge", "version": "1", "protocol": 1, "name": self._name}
        if parts.username and parts.password is not None:
            connect["user"], connect["pass"] = unquote(parts.username), unquote(parts.password)
        elif parts.username:
            connect["auth_token"] = unquote(parts.username)
        pong: asyncio.Future[None] = loop.create_future()
        self._pongs.append(pong)
        assert wire.transport is not None
        wire.transport.write(b"CONNECT " + json.dumps(connect).encode() + _CRLF + b"PING\r\n" + f"SUB {self.inbox}* 1\r\n".encode())
        done, _ = await asyncio.wait([pong, wire.lost], return_when=asyncio.FIRST_COMPLETED)
        if pong not in done:
            raise ConnectionError(f"NATS {host}:{port} closed the connection (authorization?)")
        self._connected = True
        self._outstanding_pings = 0
        log.info("NATS link connected to %s:%d", host, port)

    async def _supervise(self) -> None:
        """Ping the server; when the connection drops, reconnect (forever)."""
        while not self._closing:
            wire = self._wire
            assert wire is not None
            try:
                await asyncio.wait_for(asyncio.shield(wire.lost), self._ping_interval)
            except asyncio.TimeoutError:
                if self._outstanding_pings >= 2 and wire.transport is not None:
                    log.warning("NATS link: no PONG, reconnecting")
                    wire.transport.abort()
                    continue
                self._outstanding_pings += 1
                self._pongs.append(asyncio.get_running_loop().create_future())
                if wire.transport is not None:
                    wire.transport.write(b"PING\r\n")
                continue
            while not self._closing:
                try:
                    await self._connect_any()
                    break
                except ConnectionError as exc:
                    log.warning("NATS link reconnect failed: %s", exc)
                    await asyncio.sleep(self._reconnect_wait)

    def _lost(self, wire: _Wire) -> None:
        if wire is self._wire:
            self._connected = False
            self._backlog = 0
            self._out.clear()
            for pong in self._pongs:
                if not pong.done():
                    pong.cancel()
            self._pongs.clear()
            if not self._closing:
                log.warning("NATS link lost; hits answer 503 until it is back")

    def _flush(self) -> None:
        self._flush_handle = None
        wire = self._wire
        if self._out and wire is not None and wire.transport is not None and self._connected:
            wire.transport.write(b"".join(self._out))
            self._backlog = wire.transport.get_write_buffer_size()
        self._out.clear()

    # --- parsing ------------------------------------------------------------------------
    def _parse(self, wire: _Wire) -> None:
        buf = wire.buf
        pos, end = 0, len(buf)
        while pos < end:
            msg = self._msg
            if msg is not None:
                subject, hdr_len, total = msg
                stop = pos + total
                if stop + 2 > end:
                    break
                self._msg = None
                self._deliver(subject, hdr_len, bytes(buf[pos:stop]))
                pos = stop + 2
                continue
            eol = buf.find(_CRLF, pos)
            if eol < 0:
                break
            line = bytes(buf[pos:eol])
            pos = eol + 2
            op = line[:4]
            if op == b"MSG ":
                parts = line.split(b" ")
                self._msg = (parts[1], 0, int(parts[-1]))
            elif op == b"HMSG":
                parts = line.split(b" ")
                self._msg = (parts[1], int(parts[-2]), int(parts[-1]))
            elif op == b"PING":
                if wire.transport is not None:
                    wire.transport.write(b"PONG\r\n")
            elif op == b"PONG":
                self._outstanding_pings = 0
                while self._pongs:
                    pong = self._pongs.pop(0)
                    if not pong.done():
                        pong.set_result(None)
                        break
            elif op == b"INFO":
                try:
                    self._info = json.loads(line[5:])
                except ValueError:
                    self._info = {}
                waiter = self._info_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif op == b"-ERR":
                log.warning("NATS link: %s", line.decode("utf-8", "replace"))
        del buf[:pos]

    def _deliver(self, subject: bytes, hdr_len: int, payload: bytes) -> None:
        token = subject[self._prefix_len :].decode()
        if hdr_len:
            headers, status = parse_headers(payload[:hdr_len])
            reply = Reply(payload[hdr_len:], headers, status)
        else:
            reply = Reply(payload, None)
        try:
            self._on_reply(token, reply)
        except Exception:
            log.exception("reply handler failed")


class NatsPyLink:
    """The same surface over a nats-py connection (one wildcard inbox subscription)."""

    def __init__(self, nc: Client, on_reply: OnReply) -> None:
        self._nc = nc
        self._on_reply = on_reply
        self.inbox = nc.new_inbox() + "."
        self._sub: Subscription | None = None

    async def connect(self) -> None:
        self._sub = await self._nc.subscribe(self.inbox + "*", cb=self._cb)

    @property
    def is_connected(self) -> bool:
        return bool(self._nc.is_connected)

    @property
    def max_payload(self) -> int:
        return int(self._nc.max_payload)

    def publish(self, subject: str, payload: bytes, reply: str = "", headers: Mapping[str, str] | None = None) -> None:
        if not self._nc.is_connected:
            raise LinkDown("NATS is not connected")
        asyncio.ensure_future(self._nc.publish(subject, payload, reply=reply, headers=dict(headers) if headers else None))

    async def _cb(self, msg: Msg) -> None:
        headers = dict(msg.headers) if msg.headers else None
        status = headers.get("Status", "") if headers else ""
        self._on_reply(msg.subject[len(self.inbox) :], Reply(msg.data, headers, status))

    async def close(self) -> None:
        if self._sub is not None and not self._nc.is_closed:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
        self._sub = None


__all__ = ["Link", "LeanLink", "NatsPyLink", "Reply", "LinkDown", "parse_headers"]
