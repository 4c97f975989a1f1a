"""/wss: frames through the pipeline with id__ echoed; server push to every socket of a uid."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType

from band import wire
from support.poll import wait_for
from support.fakes import FakeService, running_edge, typed, unique


async def test_frames_run_the_pipeline(nc: Any, nats_url: str) -> None:
    svc = unique("wsv")
    seen: list[dict[str, Any]] = []

    async def echo(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed({"type__": "data", "statusCode": 200, "data": {"got": message["data"]["x"]}})

    async with FakeService(nc, svc).handler("echo", echo), running_edge(nats_url) as (client, edge):
        async with client.ws_connect("/wss?uid=1234567890123") as ws:
            await ws.send_str(json.dumps({"service": svc, "name": "echo", "x": 7, "id__": 5}))
            answer = json.loads((await ws.receive()).data)
            assert answer == {"type__": "data", "statusCode": 200, "data": {"got": 7}, "id__": 5}
            assert seen[0]["channel"] == "ws" and seen[0]["uid"] == "1234567890123"

            await ws.send_str(json.dumps({"service": "t4k", "name": "page", "id__": "a"}))
            track = json.loads((await ws.receive()).data)
            assert track["type__"] == "data" and "id" in track["data"] and track["id__"] == "a"

            await ws.send_str("not json")
            bad = json.loads((await ws.receive()).data)
            assert bad["type__"] == "error" and bad["statusCode"] == 400 and bad["id__"] is None

            await ws.send_str(json.dumps({"service": "a.b", "name": "x", "id__": 9}))
            unsafe = json.loads((await ws.receive()).data)
            assert unsafe["statusCode"] == 400 and unsafe["id__"] == 9


async def test_push_reaches_every_socket_of_the_uid_on_every_edge(nc: Any, nats_url: str) -> None:
    uid = "9876543210987"
    async with running_edge(nats_url) as (client_a, edge_a), running_edge(nats_url) as (client_b, edge_b):
        async with client_a.ws_connect(f"/wss?uid={uid}") as ws1, client_b.ws_connect(f"/wss?uid={uid}") as ws2, client_a.ws_connect("/wss?uid=1111111111111") as other:
            await wait_for(lambda: len(edge_a.sockets) == 2 and len(edge_b.sockets) == 1, what="sockets registered")
            await nc.publish(wire.ws_subject(uid), b'{"hello":"you"}')
            for ws in (ws1, ws2):
                msg = await ws.receive(timeout=5)
                assert msg.type == WSMsgType.TEXT and msg.data == '{"hello":"you"}'
            await nc.publish(wire.ws_subject("1111111111111"), b'{"n":2}')
            assert (await other.receive(timeout=5)).data == '{"n":2}'
        await wait_for(lambda: len(edge_a.sockets) == 0, what="sockets removed")


async def test_plain_get_on_wss_is_400(nats_url: str) -> None:
    async with running_edge(nats_url) as (client, edge):
        resp = await client.get("/wss")
        assert resp.status == 400 and "WebSocket" in (await resp.json())["message"]
