"""/wss: frames through the pipeline with id__ echoed; server push to every socket of a uid."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from support.fakes import FakeService, routed, running_edge, typed, unique
from support.poll import wait_for

from band import wire


async def test_frames_run_the_pipeline(nc: Any, nats_url: str) -> None:
    svc = unique("wsv")
    seen: list[dict[str, Any]] = []

    async def echo(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed({"type__": "data", "statusCode": 200, "data": {"got": message["data"]["x"]}})

    async with FakeService(nc, svc).handler("echo", echo), running_edge(nats_url) as (client, _edge):
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
        async with (
            client_a.ws_connect(f"/wss?uid={uid}") as ws1,
            client_b.ws_connect(f"/wss?uid={uid}") as ws2,
            client_a.ws_connect("/wss?uid=1111111111111") as other,
        ):
            await wait_for(lambda: len(edge_a.sockets) == 2 and len(edge_b.sockets) == 1, what="sockets registered")
            await nc.publish(wire.ws_subject(uid), b'{"hello":"you"}')
            for ws in (ws1, ws2):
                msg = await ws.receive(timeout=5)
                assert msg.type == WSMsgType.TEXT and msg.data == '{"hello":"you"}'
            await nc.publish(wire.ws_subject("1111111111111"), b'{"n":2}')
            assert (await other.receive(timeout=5)).data == '{"n":2}'
        await wait_for(lambda: len(edge_a.sockets) == 0, what="sockets removed")


async def test_plain_get_on_wss_is_400(nats_url: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        resp = await client.get("/wss")
        assert resp.status == 400 and "WebSocket" in (await resp.json())["message"]


async def test_a_frame_with_a_lone_surrogate_is_answered(nats_url: str) -> None:
    """``"\\ud800"`` parses as JSON but cannot be published: the frame got no answer at
    all (the edge only logged it). Now an error frame with its ``id__``, as for other bad frames."""
    async with running_edge(nats_url) as (client, _edge):
        async with client.ws_connect("/wss?uid=1234567890123") as ws:
            await ws.send_str('{"service": "track", "name": "page", "a": "\\ud800", "id__": 5}')
            bad = json.loads((await ws.receive(timeout=5)).data)
            assert bad["type__"] == "error" and bad["statusCode"] == 400 and bad["id__"] == 5
            assert "lone surrogate \\ud800 at a" in bad["message"]
            await ws.send_str('{"service": "track", "name": "page", "id__": "\\udfff"}')  # its id__ cannot be echoed
            assert json.loads((await ws.receive(timeout=5)).data) | {"message": ""} == {
                "type__": "error",
                "statusCode": 400,
                "data": {},
                "message": "",
                "id__": None,
            }
            await ws.send_str(json.dumps({"service": "track", "name": "page", "id__": 6}))
            assert json.loads((await ws.receive(timeout=5)).data)["id__"] == 6  # the socket still serves


async def test_an_upgrade_whose_headers_are_not_utf8_is_400(nats_url: str) -> None:
    """Every frame of such a socket would have failed to publish (its User-Agent goes into
    each message): the upgrade is refused, naming the header."""
    async with running_edge(nats_url) as (client, _edge):
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"GET /wss HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head.startswith(b"HTTP/1.1 400 ") and b"X-Content-Type-Options: nosniff" in head
        size = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        assert b"header User-Agent is not valid UTF-8" in await reader.readexactly(size)
        writer.close()


async def test_one_page_view_keeps_one_uid_on_every_transport_and_pushes_follow_the_cookie(nc: Any, nats_url: str) -> None:
    """A page whose stored uid differs from the edge's cookie (the cookie changed, the site
    kept its uid): its HTTP hit and its WebSocket frame were stored under two uids, and a
    push to the uid the page knows missed its socket. Now both events carry the page's uid,
    the HTTP answer re-issues the cookie to it, and a socket that arrives with that cookie
    gets the page's pushes; a frame naming a stranger's uid never gets the stranger's."""
    svc = unique("page")
    page, old_cookie, stranger = "4444444444444", "5555555555555", "6666666666666"
    seen: list[dict[str, Any]] = []

    async def record(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed({"type__": "data", "statusCode": 200, "data": {}})

    async with FakeService(nc, svc).handler("view", record), running_edge(nats_url) as (client, edge):
        await routed(edge, f"in.gen.{svc}.view")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as browser:  # cookies as sent, by hand
            hit = await browser.get(client.make_url(f"/{svc}/view?uid={page}"), headers={"Cookie": f"uid={old_cookie}"})
            assert hit.status == 200 and hit.cookies["uid"].value == page  # the cookie follows the page's uid
            async with browser.ws_connect(client.make_url(f"/wss?uid={page}"), headers={"Cookie": f"uid={old_cookie}"}) as ws:
                await ws.send_str(json.dumps({"service": svc, "name": "view", "uid": page, "id__": 1}))
                assert json.loads((await ws.receive(timeout=5)).data)["id__"] == 1
            assert [m["uid"] for m in seen] == [page, page]  # one page view, one uid

            async with browser.ws_connect(client.make_url("/wss"), headers={"Cookie": f"uid={page}"}) as ws:
                await ws.send_str(json.dumps({"service": svc, "name": "view", "uid": stranger, "id__": 2}))
                assert json.loads((await ws.receive(timeout=5)).data)["id__"] == 2
                assert seen[-1]["uid"] == stranger  # naming a uid changes the event's uid...
                await wait_for(lambda: len(edge.sockets) == 1, what="socket registered")
                await nc.publish(wire.ws_subject(stranger), b'{"for":"stranger"}')
                await nc.publish(wire.ws_subject(page), b'{"for":"page"}')
                # ...never what the socket receives: pushes arrive in order, so the stranger's would come first
                assert (await ws.receive(timeout=5)).data == '{"for":"page"}'
