"""/lib.js, uids, front's headers and fixed paths, against a real edge."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
from support.fakes import running_edge, unique
from support.sdk import arrivals

from band import wire
from broker.headers import auto_domain, forwarded_host
from broker.libjs import tracker_source
from broker.request import pick_uid, valid_uid

PREFIX = re.compile(r'^;window\["(?P<g>\w+)"\]&&window\["(?P=g)"\]\(\'configure\',(?P<opts>\{.*?\})\);')


def configured(body: str) -> tuple[str, dict[str, Any]]:
    match = PREFIX.match(body)
    assert match, body[:200]
    return match["g"], json.loads(match["opts"])


async def test_lib_js_serves_the_configured_sdk_with_the_visitors_uid(nats_url: str, tmp_path: Path) -> None:
    sdk = tmp_path / "lib.js"
    sdk.write_text("/* the SDK */ window.loaded = true;\n")
    async with running_edge(nats_url, lib_file=str(sdk), client_common={"activateWs": True, "server": "t.example"}) as (client, _):
        first = await client.get("/lib.js")
        assert first.status == 200
        assert first.headers["Content-Type"] == "text/javascript; charset=utf-8"
        # it holds this visitor's uid: only their own browser keeps it, and asks again when its cookie changed
        assert first.headers["Cache-Control"] == "private, max-age=3600" and "Expires" not in first.headers
        assert {"Cookie", "Accept-Encoding"} <= {v.strip() for v in first.headers["Vary"].split(",")}
        body = await first.text()
        name, options = configured(body)
        issued = first.cookies["uid"].value
        assert name == "rstat" and options == {"initialUid": issued, "urlMark": "band", "activateWs": True, "server": "t.example"}
        assert wire.UID_RE.match(issued)
        assert body.endswith("/* the SDK */ window.loaded = true;\n")
        # a returning visitor: the cookie's uid is the one handed to the page
        back = await client.get("/lib.js", headers={"Cookie": "uid=1234567890123456789"})
        assert configured(await back.text())[1]["initialUid"] == "1234567890123456789"
        assert back.cookies["uid"].value == "1234567890123456789"
        # uid=0 (what the SDK sends before it knows one) is no uid
        zero = await client.get("/lib.js?uid=0", headers={"Cookie": "uid=0"})
        fresh = configured(await zero.text())[1]["initialUid"]
        assert fresh != "0" and wire.UID_RE.match(fresh) and zero.cookies["uid"].value == fresh


async def test_lib_js_global_is_configurable_and_own_tracker_is_the_default(nats_url: str) -> None:
    async with running_edge(nats_url, lib_global="rstat4") as (client, _):
        resp = await client.get("/lib.js")
        body = await resp.text()
        name, options = configured(body)
        assert name == "rstat4"
        assert tracker_source().decode().strip() in body
        assert body.rstrip().endswith(f'(window,document,"rstat4",{json.dumps(options, separators=(",", ":"))});')


def test_uid_zero_and_invalid_are_no_uid() -> None:
    for bad in ("0", 0, "0000000000", "", None, "12345", "abc1234567890", True, "1" * 23, ["1234567890123"]):
        assert valid_uid(bad) is None, bad
    assert valid_uid(1234567890123) == "1234567890123"
    assert pick_uid("0", 0, "1234567890123") == "1234567890123"


async def test_uid_zero_in_payload_and_query_is_absent(nc: Any, nats_url: str) -> None:
    svc = unique("uid")
    async with running_edge(nats_url) as (client, _), arrivals(nc, f"in.gen.{svc}.>") as seen:
        a = await client.post(f"/band/{svc}/page.json?uid=0", data=json.dumps({"uid": 0}))
        b = await client.get(f"/{svc}/page?uid=0")
        (ea, eb) = await seen.take(2)
    assert ea["uid"] != "0" and wire.UID_RE.match(ea["uid"]) and a.cookies["uid"].value == ea["uid"]
    assert eb["uid"] != "0" and wire.UID_RE.match(eb["uid"]) and eb["uid"] != ea["uid"]
    assert b.cookies["uid"].value == eb["uid"]


async def test_first_visit_parallel_hits_keep_the_lib_js_uid(nc: Any, nats_url: str) -> None:
    """The SDK's first hits leave at once, before any cookie: all carry initialUid."""
    async with running_edge(nats_url) as (client, _), arrivals(nc, "in.gen.track.>") as seen:
        first = await client.get("/lib.js")
        uid = configured(await first.text())[1]["initialUid"]
        # fresh connections with no cookie jar: as the browser's parallel first requests
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw:
            for name in ("session", "page", "page_loaded"):
                body = json.dumps({"service": "track", "name": name, "uid": uid, "page": {"url": "https://shop.example/"}})
                async with raw.post(client.make_url("/band/t4k.json"), data=body) as resp:
                    assert resp.status == 200
        events = await seen.take(3)
    assert {e["name"] for e in events} == {"session", "page", "page_loaded"}
    assert {e["uid"] for e in events} == {uid}


async def test_security_headers_fixed_paths(nats_url: str) -> None:
    async with running_edge(nats_url, name="edge-under-test") as (client, _):
        for path in ("/", "/health", "/lib.js", "/favicon.ico", "/track/page", "/nope/a/b/c/d", "/coffee"):
            resp = await client.get(path)
            assert resp.headers["X-Frame-Options"] == "SAMEORIGIN", path
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        icon = await client.get("/favicon.ico")
        assert icon.status == 200 and icon.content_type == "image/x-icon" and (await icon.read())[:4] == b"\x00\x00\x01\x00"
        tea = await client.get("/coffee")
        assert tea.status == 418 and tea.headers["X-My-Name"] == "edge-under-test"
        pre = await client.options("/track/page")
        assert pre.headers["X-Content-Type-Options"] == "nosniff"


def test_domain_rules() -> None:
    assert auto_domain("www.shop.example.com") == "example.com"
    assert auto_domain("shop.example.com") == "example.com"
    assert auto_domain("www.example.com") == "example.com"
    assert auto_domain("example.com") == "example.com"
    assert forwarded_host({"X-Forwarded-Host": "Track.Example.com:443"}) == "track.example.com"
    assert forwarded_host({"X-Forwarded-Host": "a.example, b.example"}) == "a.example"
    assert forwarded_host({"X-Forwarded-Host": "evil.example; Domain=x"}) == ""
    assert forwarded_host({}) == ""


async def test_cookie_domain_and_td_host(nc: Any, nats_url: str) -> None:
    svc = unique("host")
    # the test client's peer is 127.0.0.1: a trusted proxy by default
    async with running_edge(nats_url, domain="www.shop.example.com") as (client, _), arrivals(nc, f"in.gen.{svc}.>") as seen:
        proxied = await client.get(f"/{svc}/a", headers={"X-Forwarded-Host": "track.example.org"})
        assert "Domain=track.example.org" in proxied.headers["Set-Cookie"]
        plain = await client.get(f"/{svc}/b")
        assert "Domain=.example.com" in plain.headers["Set-Cookie"]
        a, b = await seen.take(2)
    assert a["td"]["host"] == "track.example.org" and b["td"]["host"].startswith("127.0.0.1:")
    async with running_edge(nats_url, trusted_proxies=("10.0.0.0/8",)) as (client, _):
        untrusted = await client.get("/pixel/x.gif", headers={"X-Forwarded-Host": "track.example.org"})
        assert "Domain" not in untrusted.headers["Set-Cookie"]


async def test_websocket_upgrade_sets_the_uid_it_issued(nats_url: str) -> None:
    async with running_edge(nats_url) as (client, _):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw:
            async with raw.ws_connect(client.make_url("/wss?uid=0")) as ws:
                await ws.send_str(json.dumps({"service": "track", "name": "hello", "id__": 1}))
                answer = json.loads((await ws.receive()).data)
                cookie = ws._response.headers.get("Set-Cookie", "")  # the upgrade answer
            assert answer["statusCode"] == 200 and re.match(r"uid=[0-9]{10,22};", cookie), cookie
            async with raw.ws_connect(client.make_url("/wss"), headers={"Cookie": "uid=1234567890123"}) as ws:
                assert "Set-Cookie" not in ws._response.headers
                assert ws._response.headers["X-Content-Type-Options"] == "nosniff"


async def test_lib_js_is_gzipped_and_a_returning_view_transfers_no_sdk(nats_url: str, tmp_path: Path) -> None:
    """Bytes on the wire for a 200 KB SDK: gzipped when the browser accepts it (the same bytes
    once unpacked), and nothing but headers when the browser asks again with its ETag."""
    import gzip
    import random

    words = [f"function f{n}(a,b){{return a+b*{n}}}" for n in range(400)]
    sdk = tmp_path / "lib.js"
    sdk.write_text(";".join(random.Random(1).choice(words) for _ in range(7500)) + "\n")
    cookie = {"Cookie": "uid=1234567890123456789"}
    async with running_edge(nats_url, lib_file=str(sdk)) as (client, _):
        plain = await client.get("/lib.js", headers={**cookie, "Accept-Encoding": "identity"}, auto_decompress=False)
        plain_body = await plain.read()
        assert "Content-Encoding" not in plain.headers and len(plain_body) > 200_000
        packed = await client.get("/lib.js", headers={**cookie, "Accept-Encoding": "gzip, deflate, br"}, auto_decompress=False)
        packed_body = await packed.read()
        assert packed.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(packed_body) == plain_body, "the same SDK, uid and all"
        assert len(packed_body) < len(plain_body) / 5
        etag = packed.headers["ETag"]
        assert etag == plain.headers["ETag"] and "1234567890123456789" in etag
        again = await client.get("/lib.js", headers={**cookie, "If-None-Match": etag}, auto_decompress=False)
        assert again.status == 304 and await again.read() == b""
        assert again.headers["Cache-Control"].startswith("private")
        # another visitor (another cookie) never gets a 304 for someone else's copy
        other = await client.get("/lib.js", headers={"Cookie": "uid=9876543210987654321", "If-None-Match": etag})
        assert other.status == 200 and configured(await other.text())[1]["initialUid"] == "9876543210987654321"
        refused = await client.get("/lib.js", headers={**cookie, "Accept-Encoding": "gzip;q=0"}, auto_decompress=False)
        assert "Content-Encoding" not in refused.headers
        print(f"/lib.js on the wire: {len(plain_body)} bytes plain, {len(packed_body)} gzipped, 0 (304) when kept")
