"""``/wss``: frames run through the same pipeline; services push to a uid's sockets.

Each edge instance subscribes ``band.ws.>`` without a queue group, so a push reaches
every instance and each delivers it to the sockets of that uid it holds.

Two uids, on purpose. A frame's event takes the page's uid by the rule of every hit
(:mod:`broker.hit`: the uid it names, the socket's ``?uid=``, then the cookie), so one
page view never splits across uids. The socket's push identity is fixed at the upgrade:
the cookie it arrived with (else ``?uid=``, what the web SDK sends before it has a cookie,
else a new id); naming a uid in a frame never changes what the socket receives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import WSMsgType, web
from nats.aio.msg import Msg

from band import wire
from band.runtime import new_id

from . import consent as consents
from .config import EdgeConfig
from .consent import Consent
from .headers import SECURITY, UidCookie
from .hit import BadHit, ClientIP, Hit, Parts, first_uid, make_hit, td_of, valid_uid
from .metrics import Metrics
from .pipeline import Pipeline
from .request import check_text, cookies_of, load_json_object, refusal

log = logging.getLogger("broker.ws")


class Sockets:
    """The open sockets of this edge by uid."""

    def __init__(self) -> None:
        self._by_uid: dict[str, set[web.WebSocketResponse]] = {}

    def add(self, uid: str, ws: web.WebSocketResponse) -> None:
        self._by_uid.setdefault(uid, set()).add(ws)

    def remove(self, uid: str, ws: web.WebSocketResponse) -> None:
        group = self._by_uid.get(uid)
        if group is not None:
            group.discard(ws)
            if not group:
                del self._by_uid[uid]

    def of(self, uid: str) -> list[web.WebSocketResponse]:
        return list(self._by_uid.get(uid, ()))

    def all(self) -> list[web.WebSocketResponse]:
        return [ws for group in self._by_uid.values() for ws in group]

    def __len__(self) -> int:
        return sum(len(g) for g in self._by_uid.values())

    async def on_push(self, msg: Msg) -> None:
        """A ``band.ws.<uid>`` message: its body, verbatim, to every socket of that uid."""
        uid = msg.subject[len(wire.WS_PREFIX) + 1 :]
        targets = self.of(uid)
        if not targets:
            return
        text = msg.data.decode("utf-8", "replace")
        for ws in targets:
            if not ws.closed:
                try:
                    await ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    pass

    async def close_all(self, within_s: float) -> None:
        """Close every socket at once; a client that does not answer the close within
        ``within_s`` is left to aiohttp, which cuts its handler at the shutdown timeout."""
        sockets = self.all()
        if not sockets:
            return
        closing = [asyncio.ensure_future(ws.close(code=1001, message=b"edge shutting down")) for ws in sockets]
        _, late = await asyncio.wait(closing, timeout=within_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*closing, return_exceptions=True)


class Socket:
    """What every frame of one socket shares: the upgrade's parts of its hits."""

    __slots__ = ("choice", "consent", "cookie", "identity", "query", "request", "td")

    def __init__(self, request: web.Request, td: dict[str, Any], config: EdgeConfig, consent: Consent | None = None) -> None:
        self.request = request
        self.td = td
        self.cookie, self.choice = cookies_of(request, config)
        self.consent = consent
        named = request.query.get("uid")
        self.query: dict[str, Any] = {"uid": named} if named is not None else {}
        # the push identity: the cookie it came with; without one, ?uid= (the web SDK's
        # first connect) or a new id. A frame never changes it.
        self.identity = valid_uid(self.cookie) or valid_uid(named) or new_id()

    @property
    def page_uid(self) -> str:
        """The page's uid by the rule of every hit: the cookie the upgrade answer sets."""
        return first_uid(self.query.get("uid"), self.cookie) or self.identity

    def hit(self, frame: dict[str, Any], aliases: Mapping[str, str]) -> Hit:
        """A frame ``{"service","name",...}`` as a hit with channel ``ws``.

        Raises:
            BadHit: missing or unsafe service/name.
        """
        request = self.request
        parts = Parts(
            channel="ws", service=frame.get("service"), name=frame.get("name"), query=self.query,
            payload={k: v for k, v in frame.items() if k != "id__"}, cookie=self.cookie, td=self.td,
            own_uid=self.identity, headers=request.headers, method="WS", path=request.path, choice=self.choice,
        )
        return make_hit(parts, aliases, self.consent)


async def handle_socket(
    request: web.Request, *, pipeline: Pipeline, sockets: Sockets, config: EdgeConfig, client_ip: ClientIP, metrics: Metrics, cookie: UidCookie,
    consent: Consent | None = None,
) -> web.StreamResponse:
    """Serve one ``/wss?uid=…`` connection until it closes; a ``400`` instead of the
    upgrade when its headers cannot go into the frames' messages."""
    try:
        socket = Socket(request, td_of(request.headers, request.remote, client_ip), config, consent)
    except BadHit as bad:
        return refusal(request, bad)
    ws = web.WebSocketResponse(max_msg_size=config.max_body_bytes, heartbeat=30.0)
    ws.headers.update(SECURITY)
    page_uid = socket.page_uid
    action = consents.SET
    if consent is not None:  # the upgrade's consent: a frame's word only changes its own event
        action = consent.decide(request.headers, None, socket.choice, socket.cookie is not None).cookie
    if action == consents.SET and page_uid != socket.cookie:  # as every hit's answer: the cookie follows the page's uid
        ws.headers["Set-Cookie"] = cookie.header(page_uid, client_ip.host(request.remote, request.headers))
    elif action in (consents.GRANT, consents.CLEAR, consents.EXPIRE):
        for value in cookie.consented(action, page_uid, client_ip.host(request.remote, request.headers)):
            ws.headers.add("Set-Cookie", value)
    await ws.prepare(request)
    uid = socket.identity
    sockets.add(uid, ws)
    metrics.ws_sockets.inc()
    slots = asyncio.Semaphore(config.ws_max_inflight)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(raw: bytes) -> None:
        try:
            ident: Any = None
            try:
                frame = load_json_object(raw, config.max_depth, config.max_fields)
                ident = frame.get("id__")
                if wire.lone_surrogate(ident) is not None:  # not echoed: the answer could not be encoded
                    ident = None
                check_text(frame, raw)
                hit = socket.hit(frame, config.aliases)
            except BadHit as bad:
                out: dict[str, Any] = {"type__": "error", "statusCode": bad.status, "data": {}, "message": bad.message}
            else:
                out = (await pipeline.run(hit)).to_wire()
            out["id__"] = ident
            if not ws.closed:
                await ws.send_str(wire.encode(out).decode())
        except (ConnectionError, RuntimeError):
            pass
        except Exception:
            log.exception("websocket frame failed")
        finally:
            slots.release()

    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                raw = msg.data.encode() if msg.type == WSMsgType.TEXT else msg.data
                await slots.acquire()
                task = asyncio.create_task(answer(raw))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif msg.type == WSMsgType.ERROR:
                break
        if tasks:  # answers already on their way finish before the socket closes
            await asyncio.wait(tasks, timeout=config.shutdown_timeout_s)
    finally:
        for task in tasks:
            task.cancel()
        sockets.remove(uid, ws)
        metrics.ws_sockets.dec()
    return ws


__all__ = ["Socket", "Sockets", "handle_socket"]
