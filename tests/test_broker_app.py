"""The edge end to end: real nats-server, real HTTP, raw contract services."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.fakes import FakeService, enriches, fails, raw, returns, routed, running_edge, typed, unique

from band import wire
from band.response import PIXEL_GIF, response


async def test_root_health_metrics(nats_url: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        root = await client.get("/")
        assert root.status == 200 and "band edge" in await root.text()
        health = await client.get("/health")
        assert health.status == 200
        assert (await health.json())["jetstream"] is True
        await client.get("/pixel/hit.gif")
        metrics = await client.get("/metrics")
        text = await metrics.text()
        assert "band_edge_requests_total" in text and "band_edge_stage_seconds" in text


async def test_pixel_default_gif_cookie_cors(nats_url: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        resp = await client.get("/gif/open", headers={"Origin": "https://shop.example"})
        assert resp.status == 200
        assert resp.content_type == "image/gif"
        assert await resp.read() == PIXEL_GIF
        cookie = resp.headers["Set-Cookie"]
        assert cookie.startswith("uid=") and "Max-Age=94608000" in cookie and "HttpOnly" in cookie and "SameSite=None" in cookie
        assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert "no-store" in resp.headers["Cache-Control"]
        assert resp.headers["X-Response-Time"].endswith("ms")


async def test_default_answers(nats_url: str) -> None:
    svc = unique("hook")
    async with running_edge(nats_url) as (client, _edge):
        resp = await client.post(f"/{svc}/event", json={"a": 1})
        body = await resp.json()
        assert resp.status == 200 and body["key"] == f"in.gen.{svc}.event" and wire.UID_RE.match(body["id"])
        track = await client.get("/t4k/page")
        assert set(await track.json()) == {"id"}
        redir = await client.get("/away/go?to=https://example.com/x", allow_redirects=False)
        assert redir.status == 302 and redir.headers["Location"] == "https://example.com/x"
        bad = await client.get("/redir/go?to=javascript:alert(1)", allow_redirects=False)
        assert bad.status == 400
        assert (await client.get("/redir/go", allow_redirects=False)).status == 400
        preflight = await client.options("/track/page", headers={"Origin": "https://a.example", "Access-Control-Request-Headers": "content-type"})
        assert preflight.status == 204 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"


async def test_redirect_allow_list(nats_url: str) -> None:
    async with running_edge(nats_url, redirect_hosts=("example.com",)) as (client, _edge):
        ok = await client.get("/redir/go?to=https://www.example.com/", allow_redirects=False)
        assert ok.status == 302
        no = await client.get("/redir/go?to=https://evil.test/", allow_redirects=False)
        assert no.status == 400


async def test_handler_gets_message_and_answers(nc, nats_url: str) -> None:
    svc = unique("shop")
    seen: list[dict[str, Any]] = []

    async def page(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed(response.data({"hello": message["data"]["who"]}).to_wire())

    async with running_edge(nats_url) as (client, edge), FakeService(nc, svc).handler("page", page):
        await routed(edge, f"in.gen.{svc}.page")
        resp = await client.post(
            f"/{svc}/page/42?who=query&x=1",
            data={"who": "body", "y": "2"},
            headers={"User-Agent": "UA/1", "Referer": "https://r.example/", "X-Real-IP": "203.0.113.9"},
        )
        assert resp.status == 200
        assert await resp.json() == {"hello": "query"}
        message = seen[0]
        assert message["key"] == f"in.gen.{svc}.page" and message["service"] == svc and message["name"] == "page"
        assert message["projectId"] == 42 and message["channel"] == "http"
        assert message["data"] == {"who": "query", "x": "1", "y": "2"}
        assert message["td"]["ua"] == "UA/1" and message["td"]["ref"] == "https://r.example/" and message["td"]["ip"] == "203.0.113.0"  # the default policy
        assert wire.UID_RE.match(message["uid"]) and wire.UID_RE.match(message["id"])
        assert resp.cookies["uid"].value == message["uid"]


async def test_native_mark_and_json_extension(nc, nats_url: str) -> None:
    svc = unique("sdk")
    seen: list[dict[str, Any]] = []

    async def hit(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed(response.data({"ok": True}).to_wire())

    async with running_edge(nats_url) as (client, edge), FakeService(nc, svc).handler("hit", hit):
        await routed(edge, f"in.gen.{svc}.hit")
        resp = await client.post(f"/band/{svc}/hit.json", data=json.dumps({"uid": "1234567890123", "n": 1}), headers={"Content-Type": "text/plain"})
        assert resp.status == 200
        assert await resp.json() == {"type__": "data", "statusCode": 200, "data": {"ok": True}}
        assert seen[0]["uid"] == "1234567890123" and seen[0]["data"]["n"] == 1


async def test_uid_from_cookie_and_invalid_uid_replaced(nc, nats_url: str) -> None:
    svc = unique("u")
    seen: list[dict[str, Any]] = []

    async def hit(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed({"type__": "data", "statusCode": 200, "data": {}})

    async with running_edge(nats_url) as (client, edge), FakeService(nc, svc).handler("hit", hit):
        await routed(edge, f"in.gen.{svc}.hit")
        await client.get(f"/{svc}/hit", headers={"Cookie": "uid=6462464730849083392"})
        await client.get(f"/{svc}/hit?uid=not-a-uid", headers={"Cookie": "uid=12"})
        assert seen[0]["uid"] == "6462464730849083392"
        assert seen[1]["uid"] != "not-a-uid" and wire.UID_RE.match(seen[1]["uid"])


async def test_handler_errors_and_garbage(nc, nats_url: str) -> None:
    svc = unique("err")
    service = (
        FakeService(nc, svc)
        .handler("boom", fails(500, "KeyError('secret stuff')"))
        .handler("bad", fails(400, "missing param x"))
        .handler("garbage", raw(b"not json"))
        .handler("notyped", raw(b'{"hello": 1}'))
        .handler("crlf", returns({"type__": "redirect", "statusCode": 302, "location": "https://a.example/\r\nSet-Cookie: x=1", "data": {}}))
        .handler("scheme", returns({"type__": "redirect", "statusCode": 302, "location": "javascript:alert(1)", "data": {}}))
        .handler("go", returns({"type__": "redirect", "statusCode": 301, "location": "https://a.example/", "data": {}}))
        .handler("teapot", returns({"type__": "error", "statusCode": 418, "message": "short and stout", "data": {}}))
        .handler("text", returns({"type__": "data", "statusCode": 201, "data": "plain text"}))
    )
    async with running_edge(nats_url) as (client, edge), service:
        await routed(edge, f"in.gen.{svc}.text")
        boom = await client.get(f"/{svc}/boom")
        assert boom.status == 500 and await boom.json() == {"message": "Internal Server Error"}
        bad = await client.get(f"/{svc}/bad")
        assert bad.status == 400 and await bad.json() == {"message": "missing param x"}
        for name in ("garbage", "notyped", "crlf", "scheme"):
            resp = await client.get(f"/{svc}/{name}", allow_redirects=False)
            assert resp.status == 502, name
            assert "Location" not in resp.headers
        go = await client.get(f"/{svc}/go", allow_redirects=False)
        assert go.status == 301 and go.headers["Location"] == "https://a.example/"
        teapot = await client.get(f"/{svc}/teapot")
        assert teapot.status == 418 and await teapot.json() == {"message": "short and stout"}
        text = await client.get(f"/{svc}/text")
        assert text.status == 201 and await text.text() == "plain text"
        native = await client.get(f"/band/{svc}/go")
        assert native.status == 200 and (await native.json())["location"] == "https://a.example/"


async def test_handler_timeout_is_504(nc, nats_url: str) -> None:
    svc = unique("slow")

    async def never(message: dict[str, Any]) -> None:
        return None  # no reply at all

    async with FakeService(nc, svc).handler("wait", never, timeout_ms=50), running_edge(nats_url) as (client, edge):
        await routed(edge, f"in.gen.{svc}.wait")
        resp = await client.get(f"/{svc}/wait")
        assert resp.status == 504
        assert "message" in await resp.json()


async def test_enrichers_merged_under_service(nc, nats_url: str) -> None:
    svc, geo, ua, broken = unique("trk"), unique("geo"), unique("ua"), unique("brk")
    key = f"in.gen.{svc}.page"
    seen: list[dict[str, Any]] = []

    async def page(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed({"type__": "data", "statusCode": 200, "data": message["data"]})

    services = [
        FakeService(nc, svc).handler("page", page),
        FakeService(nc, geo).enricher(enriches({"country": "NL"}), keys=[f"in.gen.{svc}"]),
        FakeService(nc, ua).enricher(enriches({"os": "Linux"}), keys=[key]),
        FakeService(nc, broken).enricher(fails(500, "boom"), keys=[f"in.gen.{svc}"]),
    ]
    for s in services:
        await s.start()
    try:
        async with running_edge(nats_url) as (client, edge):
            from support.fakes import enrichers_seen

            await enrichers_seen(edge, key, {geo, ua, broken})
            resp = await client.get(f"/{svc}/page?a=1")
            body = await resp.json()
            assert body == {"a": "1", geo: {"country": "NL"}, ua: {"os": "Linux"}}
            assert broken not in seen[0]["data"]
            assert edge.pipeline.armed_deadlines == 0  # the enrich, handler and ack deadlines all released
            metrics = await (await client.get("/metrics")).text()
            assert f'band_edge_enricher_errors_total{{service="{broken}"}} 1.0' in metrics
    finally:
        for s in services:
            await s.stop()


async def test_listen_publishes_to_jetstream(nc, nats_url: str) -> None:
    svc = unique("store")
    async with running_edge(nats_url) as (client, _edge):
        js = nc.jetstream()
        sub = await js.subscribe(f"in.gen.{svc}.>", ordered_consumer=True)
        resp = await client.post(f"/{svc}/event", json={"v": 7})
        body = await resp.json()
        msg = await sub.next_msg(timeout=5)
        stored = json.loads(msg.data)
        assert stored["id"] == body["id"] and stored["data"] == {"v": 7}
        assert msg.headers and msg.headers[wire.MSG_ID_HEADER] == body["id"]
        await sub.unsubscribe()


@pytest.mark.parametrize("alias,service", [("t4k", "track"), ("gif", "pixel"), ("away", "redir")])
async def test_aliases(nc, nats_url: str, alias: str, service: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        js = nc.jetstream()
        sub = await js.subscribe(f"in.gen.{service}.alias-{alias}", ordered_consumer=True)
        await client.get(f"/{alias}/alias-{alias}?to=https://example.com/", allow_redirects=False)
        msg = await sub.next_msg(timeout=5)
        assert json.loads(msg.data)["service"] == service
        await sub.unsubscribe()


async def test_multipart_fields_and_project_from_query(nc: Any, nats_url: str) -> None:
    import aiohttp

    svc = unique("mp")
    seen: list[dict[str, Any]] = []

    async def hook(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed({"type__": "data", "statusCode": 200, "data": {}})

    async with FakeService(nc, svc).handler("hook", hook), running_edge(nats_url) as (client, _edge):
        form = aiohttp.FormData()
        form.add_field("a", "1")
        form.add_field("upload", b"\x00\x01binary", filename="x.bin", content_type="application/octet-stream")
        resp = await client.post(f"/{svc}/hook?projectId=5", data=form)
        assert resp.status == 200
        assert seen[0]["data"] == {"a": "1", "projectId": "5"} and seen[0]["projectId"] == 5


async def test_the_link_runs_the_pipeline(nc: Any, nats_url: str) -> None:
    svc, geo = unique("lk"), unique("lkgeo")
    key = f"in.gen.{svc}.page"

    async def page(message: dict[str, Any]) -> Any:
        return typed(response.data(message["data"]).to_wire())

    async with FakeService(nc, svc).handler("page", page).handler("boom", fails(503, "busy")), FakeService(nc, geo).enricher(enriches({"c": "NL"}), keys=[key]):
        async with running_edge(nats_url) as (client, edge):
            from support.fakes import enrichers_seen

            await enrichers_seen(edge, key, {geo})
            assert await (await client.get(f"/{svc}/page?a=1")).json() == {"a": "1", geo: {"c": "NL"}}
            busy = await client.get(f"/{svc}/boom")
            assert busy.status == 503 and await busy.json() == {"message": "Service Unavailable"}  # 5xx text stays inside
            assert (await (await client.get(f"/{svc}/nobody")).json())["key"] == f"in.gen.{svc}.nobody"


async def test_cors_origins_allow_list(nats_url: str) -> None:
    async with running_edge(nats_url, cors_origins=("https://shop.example",)) as (client, _):
        trusted = await client.get("/track/page", headers={"Origin": "https://shop.example"})
        assert trusted.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert trusted.headers["Access-Control-Allow-Credentials"] == "true"
        other = await client.get("/track/page", headers={"Origin": "https://evil.example"})
        assert other.status == 200, "the hit is still recorded"
        assert other.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in other.headers
    async with running_edge(nats_url) as (client, _edge):  # default: any origin, as Rockstat's front
        anyone = await client.get("/track/page", headers={"Origin": "https://evil.example"})
        assert anyone.headers["Access-Control-Allow-Origin"] == "https://evil.example"


async def test_key_without_a_handler_in_discovery_answers_the_default_without_asking(nc, nats_url: str) -> None:
    svc = unique("nohandler")
    asked: list[str] = []

    async def record(msg: Any) -> None:
        asked.append(msg.subject)

    # a subscriber that is not in discovery: the edge must not send it the hit
    sub = await nc.subscribe(wire.handle_subject(f"in.gen.{svc}.page"), cb=record)
    try:
        async with running_edge(nats_url) as (client, _edge):
            resp = await client.get(f"/{svc}/page")
            assert resp.status == 200
            assert (await resp.json())["key"] == f"in.gen.{svc}.page"
            await nc.flush()
            assert asked == []
    finally:
        await sub.unsubscribe()


async def test_hits_stored_before_any_enricher_registered_are_counted(nc: Any, nats_url: str) -> None:
    """A hit whose key no enricher service covers yet goes on unenriched, and says so in
    ``band_edge_unenriched_total`` (the panel shows it); once one registers, hits are enriched."""
    from support.fakes import enrichers_seen

    svc, geo = unique("unen"), unique("geo")
    key = f"in.gen.{svc}.page"

    def unenriched(text: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith("band_edge_unenriched_total "))
        return float(line.split()[1])

    async with running_edge(nats_url) as (client, edge):
        for _ in range(3):
            assert (await client.get(f"/{svc}/page")).status == 200
        assert unenriched(await (await client.get("/metrics")).text()) == 3.0
        enricher = FakeService(nc, geo).enricher(enriches({"country": "NL"}), keys=[f"in.gen.{svc}"])
        await enricher.start()
        try:
            await enrichers_seen(edge, key, {geo})
            assert (await client.get(f"/{svc}/page")).status == 200
            assert unenriched(await (await client.get("/metrics")).text()) == 3.0
        finally:
            await enricher.stop()
