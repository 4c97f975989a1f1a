"""Bad input: each gets a clear answer, nothing crashes, nothing unsafe reaches NATS."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import aiohttp
import pytest
from nats.aio.msg import Msg
from support.fakes import FakeService, returns, running_edge, unique
from support.poll import wait_for
from support.processes import RawAnswer

from band._runtime.connect import flush


async def test_body_over_limit_is_413(nats_url: str) -> None:
    async with running_edge(nats_url, max_body_bytes=1024) as (client, _edge):
        resp = await client.post("/track/big", data=json.dumps({"x": "a" * 5000}), headers={"Content-Type": "application/json"})
        assert resp.status == 413
        assert "1024" in (await resp.json())["message"]
        form = await client.post("/track/big", data={"x": "a" * 5000})
        assert form.status == 413
        ok = await client.post("/track/small", json={"x": 1})
        assert ok.status == 200


@pytest.mark.parametrize(
    "body,problem",
    [
        (b'{"a": ', "malformed JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"a": NaN}', "malformed JSON"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b"[" * 100_000, "nested"),
        (json.dumps(json.loads('{"a":' * 40 + "1" + "}" * 40)).encode(), "nested deeper than 32"),
        (json.dumps({f"k{i}": i for i in range(5000)}).encode(), "too many"),
    ],
)
async def test_bad_json_is_400_naming_the_problem(nats_url: str, body: bytes, problem: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        resp = await client.post("/track/json", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert problem in (await resp.json())["message"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
async def test_other_methods_are_405(nats_url: str, method: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        resp = await client.request(method, "/track/page")
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, POST, OPTIONS"


BAD_PATHS = [
    "/a.b/page",
    "/track/pa.ge",
    "/tr*ck/page",
    "/track/>",
    "/track/pa%20ge",
    "/track/%2E",
    "/tr%00ck/page",
    "/track/p%C3%A4ge",
    "/track",
    "/track/page?service=a.b",
    "/?service=track",
    "/?name=x",
    "/band.rpc.svc/method",
]


async def test_unsafe_tokens_are_400_and_never_published(nc: Any, nats_url: str) -> None:
    seen: list[str] = []

    async def spy(msg: Msg) -> None:
        seen.append(msg.subject)
        if msg.reply and msg.subject.startswith("band.handle."):  # answer like a handler would
            await nc.publish(msg.reply, b'{"type__":"data","statusCode":200,"data":{}}')

    subs = [await nc.subscribe(s, cb=spy) for s in ("in.>", "band.>")]
    await flush(nc)
    async with running_edge(nats_url) as (client, _edge):
        for path in BAD_PATHS:
            resp = await client.get(path)
            assert resp.status == 400, path
            assert "message" in await resp.json()
        marker = unique("marker")
        assert (await client.get(f"/{marker}/done")).status == 200
        await wait_for(lambda: f"in.gen.{marker}.done" in seen, what="the marker event")
    for sub in subs:
        await sub.unsubscribe()
    assert all(marker in subject for subject in seen if not subject.startswith("band.ws")), seen


async def test_invalid_utf8_is_400(nats_url: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        assert (await client.get("/track/%FF")).status == 400
        query = await client.get("/track/page?a=%FF%FE")
        assert query.status == 400 and "UTF-8" in (await query.json())["message"]
        form = await client.post("/track/page", data=b"a=%FF", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status == 400
        raw_form = await client.post("/track/page", data=b"a=\xff", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert raw_form.status == 400


async def test_huge_query_string_is_refused(nats_url: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        huge = await client.get("/track/page?x=" + "a" * 100_000)
        assert huge.status in (400, 413, 414)
        assert (await client.get("/track/page?a=1")).status == 200


async def test_many_fields_are_400(nats_url: str) -> None:
    async with running_edge(nats_url, max_line_bytes=65536) as (client, _edge):
        many = await client.get("/track/page?" + "&".join(f"f{i}=1" for i in range(1500)))
        assert many.status == 400 and "too many" in (await many.json())["message"]
        form = await client.post("/track/page", data="&".join(f"f{i}=1" for i in range(5000)), headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status == 400
        ok = await client.get("/track/page?a=1")
        assert ok.status == 200


async def test_slow_headers_connection_is_closed(nats_url: str) -> None:
    async with running_edge(nats_url, keepalive_timeout_s=0.5) as (client, _edge):
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"GET /track/page HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)  # EOF: the edge hung up
        assert b"200" not in data
        writer.close()


async def test_slow_body_is_408(nats_url: str) -> None:
    async with running_edge(nats_url, body_timeout_s=0.3) as (client, _edge):
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"POST /track/page HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":")
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), timeout=10)
        assert b" 408 " in head
        writer.close()


async def test_rpc_endpoints_unreachable_from_http(nc: Any, nats_url: str) -> None:
    svc = unique("sec")
    called: list[Any] = []

    async def secret(message: dict[str, Any]) -> Any:
        called.append(message)
        return None, b'{"secret": true}'

    async with FakeService(nc, svc).rpc("secret", secret).handler("open", returns({"type__": "data", "statusCode": 200, "data": {"open": 1}})):
        async with running_edge(nats_url) as (client, edge):
            await wait_for(lambda: edge.discovery.snapshot.handler(f"in.gen.{svc}.open") is not None, what="discovery")
            resp = await client.get(f"/{svc}/secret")
            assert resp.status == 200 and "secret" not in (await resp.json())
            assert (await client.get(f"/band/{svc}/secret")).status == 200
            assert (await client.get(f"/{svc}/open")).status == 200
    assert called == []


async def test_big_events_cross_nats_whole_and_too_big_is_413(nc: Any, nats_url: str) -> None:
    svc = unique("big")

    async def echo(message: dict[str, Any]) -> Any:
        return None, json.dumps({"type__": "data", "statusCode": 200, "data": message["data"]}).encode()

    async with FakeService(nc, svc).handler("echo", echo), running_edge(nats_url, max_body_bytes=4 * 1024 * 1024) as (client, _edge):
        big = {"blob": "x" * 600_000, "n": list(range(1000))}
        as_json = {"Content-Type": "application/json"}
        resp = await client.post(f"/{svc}/echo", data=io.BytesIO(json.dumps(big).encode()), headers=as_json)
        assert resp.status == 200 and await resp.json() == big  # split across many TCP reads both ways
        huge = await client.post(f"/{svc}/echo", data=io.BytesIO(json.dumps({"blob": "y" * 2_000_000}).encode()), headers=as_json)
        assert huge.status == 413 and "too large" in (await huge.json())["message"]


async def test_too_big_for_enrichers_is_413_and_link_survives(nc: Any, nats_url: str) -> None:
    from support.fakes import enrichers_seen, enriches

    svc, geo = unique("bigen"), unique("bigeo")
    key = f"in.gen.{svc}.x"
    async with FakeService(nc, geo).enricher(enriches({"c": 1}), keys=[key]), running_edge(nats_url, max_body_bytes=4 * 1024 * 1024) as (client, edge):
        await enrichers_seen(edge, key, {geo})
        huge = await client.post(f"/{svc}/x", data=io.BytesIO(json.dumps({"blob": "z" * 2_000_000}).encode()), headers={"Content-Type": "application/json"})
        assert huge.status == 413
        assert edge.pipeline.is_connected
        assert (await client.get(f"/{svc}/x")).status == 200


BOUNDARY = "XyZ"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def raw_exchange(port: int, method: str, target: str, headers: dict[str, str | bytes], body: bytes) -> RawAnswer:
    """One request as raw bytes (header values as given, not UTF-8 on purpose), the answer
    parsed strictly by ``http.client``."""
    import http.client
    import socket

    fields = {"Host": "edge.test", **headers, "Content-Length": str(len(body)), "Connection": "close"}
    head = f"{method} {target} HTTP/1.1\r\n".encode()
    head += b"".join(k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n" for k, v in fields.items())
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head + b"\r\n" + body)
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        return RawAnswer(resp.status, resp.getheaders(), resp.read())


@pytest.mark.parametrize(
    "headers,body,problem",
    [
        # JSON may spell a lone surrogate; it parses, but no encoder takes it (the hit was a 500)
        ({"Content-Type": "application/json"}, b'{"a": "\\ud800"}', "lone surrogate \\ud800 at a"),
        ({"Content-Type": "application/json"}, b'{"a": {"\\udcff": 1}}', "lone surrogate \\udcff at a.\\udcff"),
        ({"Content-Type": "text/plain"}, b'{"a": ["x", "\\udfff"]}', "lone surrogate \\udfff at a[1]"),
        # header bytes that are not UTF-8 reach the message's td as lone surrogates
        ({"User-Agent": b"Mozilla \xff\xfe"}, b"", "header User-Agent is not valid UTF-8"),
        ({"Referer": b"https://x.test/\xed\xa0\x80"}, b"", "header Referer is not valid UTF-8"),
        ({"Host": b"x\xff.test"}, b"", "header Host is not valid UTF-8"),
        # multipart: a part header aiohttp cannot parse, a part name that is not UTF-8
        (
            {"Content-Type": MULTIPART},
            f"--{BOUNDARY}\r\nContent-Disposition form-data\r\n\r\nv\r\n--{BOUNDARY}--\r\n".encode(),
            "malformed body: Invalid HTTP header",
        ),
        (
            {"Content-Type": MULTIPART},
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a\xff"\r\n\r\nv\r\n--{BOUNDARY}--\r\n'.encode("latin-1"),
            "lone surrogate \\udcff at a\\udcff",
        ),
    ],
    ids=["json-escape", "json-key", "text-plain-json", "user-agent", "referer", "host", "multipart-header", "multipart-name"],
)
async def test_text_that_is_not_utf8_is_400_naming_it(nc: Any, nats_url: str, headers: dict[str, str | bytes], body: bytes, problem: str) -> None:
    """Every way text that is not UTF-8 enters a hit answers 400 naming where (it was a 500),
    and nothing is published."""
    svc = unique("utf")
    seen: list[str] = []

    async def spy(msg: Msg) -> None:
        seen.append(msg.subject)

    sub = await nc.subscribe(f"in.gen.{svc}.>", cb=spy)
    await flush(nc)
    async with running_edge(nats_url) as (client, _edge):
        answer = await asyncio.to_thread(raw_exchange, client.port, "POST" if body else "GET", f"/{svc}/page", headers, body)
        assert answer.status == 400, answer.body
        assert problem in answer.json()["message"], answer.json()
        ok = await client.post(f"/{svc}/done", json={"a": "ünï \U0001F600"})  # real text, pairs included, still goes through
        assert ok.status == 200
    await wait_for(lambda: f"in.gen.{svc}.done" in seen, what="the control hit")
    await sub.unsubscribe()
    assert seen == [f"in.gen.{svc}.done"]


async def test_a_uid_past_64_bits_is_replaced_wherever_it_comes_from(nc: Any, nats_url: str) -> None:
    """Query, body, cookie, WebSocket and upload: a 20-digit uid over 2**64 - 1 is no uid;
    a new one is issued and set as the cookie, as for ``uid=0`` (it was kept, and stored as 0)."""
    too_big = "99999999999999999999"
    svc = unique("uid")
    events: list[dict[str, Any]] = []

    async def keep(msg: Msg) -> None:
        events.append(json.loads(msg.data))

    sub = await nc.subscribe(f"in.gen.{svc}.>", cb=keep)
    await flush(nc)
    async with running_edge(nats_url, upload_bucket=unique("uidup")) as (client, _edge):
        answers = [
            await client.get(f"/{svc}/query?uid={too_big}"),
            await client.post(f"/{svc}/body", json={"uid": too_big}),
            await client.post(f"/{svc}/number", data=f'{{"uid": {too_big}}}', headers={"Content-Type": "application/json"}),
            await client.get(f"/{svc}/cookie", headers={"Cookie": f"uid={too_big}"}),
        ]
        form = aiohttp.FormData()
        form.add_field("uid", too_big)
        form.add_field("f", io.BytesIO(b"data"), filename="f.txt")
        answers.append(await client.post(f"/upload/{svc}/upload", data=form))
        for resp in answers:
            assert resp.status == 200, await resp.text()
            issued = resp.cookies["uid"].value
            assert issued != too_big and int(issued) < 2**64
        async with client.ws_connect(f"/wss?uid={too_big}", headers={"Cookie": f"uid={too_big}"}) as ws:
            issued = ws._response.cookies["uid"].value
            assert issued != too_big and int(issued) < 2**64
            await ws.send_str(json.dumps({"service": svc, "name": "ws", "id__": 1}))
            assert json.loads((await ws.receive()).data)["statusCode"] == 200
        await wait_for(lambda: len(events) == 6, what="the six events")
    await sub.unsubscribe()
    assert all(e["uid"] != too_big and int(e["uid"]) < 2**64 for e in events), [e["uid"] for e in events]
