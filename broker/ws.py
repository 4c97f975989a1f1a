"""``/wss``: frames run through the same pipeline; services push to a uid's sockets.

Each edge instance subscribes ``band.ws.>`` without a queue group, so a push reaches
every instance and each delivers it to the sockets of that uid it holds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSMsgType, web
from nats.aio.msg import Msg

from band import wire
from band.runtime import new_id

from .config import EdgeConfig
from .metrics import Metrics
from .pipeline import Pipeline
from .headers import SECURITY, UidCookie
from .tracing import open_trace
from .request import BadHit, ClientIP, build_message, check_text, check_token, load_json_object, project_id, refusal, td_of, valid_uid

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


def frame_message(frame: dict[str, Any], uid: str, td: dict[str, Any], config: EdgeConfig) -> dict[str, Any]:
    """A WebSocket frame ``{"service","name",...}`` as a message with channel ``ws``.

    Raises:
        BadHit: missing or unsafe service/name.
    """
    service = frame.get("service")
    service = config.aliases.get(service, service) if isinstance(service, str) else service
    service = check_token("service", service)
    name = check_token("name", frame.get("name"))
    data = {k: v for k, v in frame.items() if k != "id__"}
    return build_message(
        key=f"{wire.KEY_PREFIX}.{service}.{name}",
        service=service,
        name=name,
        channel="ws",
        project=project_id(frame.get("projectId")),
        uid=uid,
        td=td,
        data=data,
    )


async def handle_socket(request: web.Request, *, pipeline: Pipeline, sockets: Sockets, config: EdgeConfig, client_ip: ClientIP, metrics: Metrics, cookie: UidCookie) -> web.StreamResponse:
    """Serve one ``/wss?uid=…`` connection until it closes; a ``400`` instead of the
    upgrade when its headers cannot go into the frames' messages."""
    try:
        td = td_of(request, client_ip)
    except BadHit as bad:
        return refusal(request, bad)
    ws = web.WebSocketResponse(max_msg_size=config.max_body_bytes, heartbeat=30.0)
    # the cookie first: a page cannot forge it, while ?uid= (what the web SDK sends
    # when it has no cookie) can name anyone; pushes must not carry secrets either way
    known = valid_uid(request.cookies.get(config.cookie_name)) or valid_uid(request.query.get("uid"))
    uid = known or new_id()
    ws.headers.update(SECURITY)
    if known is None or known != request.cookies.get(config.cookie_name):  # issued or taken from ?uid=: remember it
        ws.headers["Set-Cookie"] = cookie.header(uid, client_ip.host(request.remote, request.headers))
    await ws.prepare(request)
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
                message = frame_message(frame, uid, td, config)
            except BadHit as bad:
                out: dict[str, Any] = {"type__": "error", "statusCode": bad.status, "data": {}, "message": bad.message}
            else:
                trace = open_trace(request.headers, "WS", request.path, message)
                answered = await pipeline.run(message, trace=trace)
                if trace is not None:
                    trace.end(answered.statusCode)
                out = answered.to_wire()
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


__all__ = ["Sockets", "handle_socket", "frame_message"]
