"""Every service in examples/, loaded as `band run` loads it and driven over NATS as the edge does."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from support.poll import wait_for

from band import App, wire
from band._core.rpc import RPC
from band._runtime.service import Service
from band._runtime.stream import ensure_stream
from band.response import ErrorResponse, PixelResponse, RedirectResponse, Response, from_wire
from band.testing import serve

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UID = "6462464730849083392"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_6) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/70.0.3538.77 Safari/537.36"
)


def message(key: str, /, *, uid: str = UID, ip: str = "109.252.93.158", ua: str = CHROME_MAC, **data: Any) -> dict[str, Any]:
    """The message the edge builds for a hit on /<service>/<name>?<data>."""
    _, _, service, name = key.split(".")
    return {"key": key, "service": service, "name": name, "channel": "http", "projectId": 0, "uid": uid,
            "td": {"ip": ip, "ua": ua}, "data": data, "id": "6462464730849083393", "time": 1540771658623}


async def handle(nc: Any, key: str, /, **fields: Any) -> Response | tuple[int, str]:
    """Ask the handler of ``key`` as the edge does; an error reply comes back as (code, text)."""
    msg = await nc.request(wire.handle_subject(key), wire.encode(message(key, **fields)), timeout=5)
    return wire.error_from_headers(msg.headers) or from_wire(json.loads(msg.data))


async def enrich(nc: Any, key: str, /, **fields: Any) -> Any:
    msg = await nc.request(wire.enrich_subject(key), wire.encode(message(key, **fields)), timeout=5)
    assert wire.error_from_headers(msg.headers) is None
    return json.loads(msg.data)


@asynccontextmanager
async def running(service: str | App, nats_url: str, nc: Any) -> AsyncIterator[Service]:
    """``serve`` an example (by directory name) and wait until ``nc`` sees it answer.

    ``serve`` returns once the service's own connection flushed its subscriptions, yet
    a request from another connection right after can still get "no responders"
    (about 1 in 50 here); once its discovery PING answers, everything subscribed
    before it is visible too.
    """
    async with serve(EXAMPLES / service if isinstance(service, str) else service, nats_url) as svc:
        subject = f"$SRV.PING.{svc.app.name}.{svc.identity.id}"

        async def answers() -> bool:
            try:
                await nc.request(subject, b"", timeout=1)
                return True
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                return False

        await wait_for(answers, what=f"{svc.app.name} to answer {subject}")
        yield svc


def example(name: str) -> Path:
    return EXAMPLES / name


# --- the documented snippets ------------------------------------------------------
async def test_docs_snippets(nats_url: str, nc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LONG_METHOD_SECONDS", "0.05")
    async with running("docs", nats_url, nc) as svc:
        state = svc.app.module.state  # type: ignore[attr-defined]
        await wait_for(lambda: state.loaded, what="the worker's first pass")
        assert await handle(nc, "in.gen.docs.pix") == PixelResponse()
        got = await handle(nc, "in.gen.docs.get_state")
        assert isinstance(got, Response) and got.data["counter"] == 1 and got.data["loaded"] is True
        err = await handle(nc, "in.gen.docs.error")
        assert isinstance(err, ErrorResponse) and (err.statusCode, err.message) == (500, "Some F*cking error")
        slow = await handle(nc, "in.gen.docs.long_method", a="1")
        assert isinstance(slow, Response) and slow.data["data"] == {"a": "1"}
        assert (await handle(nc, "in.gen.docs.alias")).data == {"message": "you are catch me!"}  # type: ignore[union-attr]
        assert await enrich(nc, "in.gen.track.page") == {"param1": "value1"}
        await nc.publish("in.gen.track.page", wire.encode(message("in.gen.track.page")))
        await wait_for(lambda: state.events >= 1, what="the broadcast listener")
        denied = await handle(nc, "in.gen.docs.protected", key="wrong")
        assert isinstance(denied, ErrorResponse) and denied.statusCode == 403
        allowed = await handle(nc, "in.gen.docs.protected", key="dev-key")
        assert isinstance(allowed, Response) and allowed.data["extra"] == [74994041156]
    assert state.loaded is False, "the cleanup ran at stop"


async def test_docs_api_key_from_environment(nats_url: str, nc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "s3cret")
    async with running("docs", nats_url, nc) as svc:
        assert svc.app.settings.api_key == "s3cret"
        assert isinstance(await handle(nc, "in.gen.docs.protected", key="s3cret"), Response)
        denied = await handle(nc, "in.gen.docs.protected", key="dev-key")
        assert isinstance(denied, ErrorResponse) and denied.statusCode == 403


async def test_go_wildcard_redirect_with_alias(nats_url: str, nc: Any) -> None:
    async with running("go", nats_url, nc) as svc:
        assert svc.app.name == "redirects"
        assert await handle(nc, "in.gen.go.docs") == RedirectResponse(
            location="https://github.com/rockstat/band", data={"link": "docs"})
        search = await handle(nc, "in.gen.go.cats")
        assert isinstance(search, RedirectResponse)
        assert search.location == "https://www.yandex.ru/search/?lr=213&text=cats"


# --- enrichers --------------------------------------------------------------------------
async def test_uaparser_enricher(nats_url: str, nc: Any) -> None:
    async with running("uaparser", nats_url, nc) as svc:
        found = await enrich(nc, "in.gen.track.page")
        assert found["os_family"] == "Mac OS X" and found["os_version"] == [10, 13, 6]
        assert found["browser_family"] == "Chrome" and found["browser_version"] == [70, 0, 3538]
        assert found["device_family"] == "Mac" and found["is_bot"] is False
        assert (found["is_pc"], found["is_mob"], found["is_tablet"]) == (True, False, False)
        ipad = await enrich(nc, "in.gen.track.page", ua="Mozilla/5.0 (iPad; CPU OS 12_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148")
        assert (ipad["is_tablet"], ipad["is_mob"], ipad["is_pc"]) == (True, False, False), "uaparser_is_tablet gets filled"
        phone = await enrich(nc, "in.gen.track.page", ua="Mozilla/5.0 (Linux; Android 9; SM-G960F) Chrome/74.0 Mobile Safari/537.36")
        assert (phone["is_mob"], phone["is_tablet"]) == (True, False)
        bot = await enrich(nc, "in.gen.pixel.hit", ua="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
        assert bot["is_bot"] is True
        assert await enrich(nc, "in.gen.track.page", ua="") is None, "no user agent adds nothing"
        await enrich(nc, "in.gen.track.page")
        assert svc.app.module.describe.cache_info().hits >= 1  # type: ignore[attr-defined]


async def test_geoip_enricher(nats_url: str, nc: Any) -> None:
    async with running("geoip", nats_url, nc):
        found = await enrich(nc, "in.gen.track.page", ip="109.252.93.158")
        assert found["country_code"] == "RU" and found["country_name"] == "Russia"
        v6 = await enrich(nc, "in.gen.track.page", ip="2a00:1450:4001:80b::200e")
        assert v6["country_code"] == "DE"
        for ip in ("192.168.1.10", "127.0.0.1", "::1", "not an ip", ""):
            assert await enrich(nc, "in.gen.track.page", ip=ip) is None, ip


# --- shortlink ----------------------------------------------------------------------------
async def test_shortlink_kv(nats_url: str, nc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORTLINK_BUCKET", "test_shortlinks")
    rpc = RPC(lambda: nc)
    async with running("shortlink", nats_url, nc):
        assert await rpc.request("shortlink", "create", link="promo", url="https://example.com/sale?x=1") == {
            "link": "promo", "url": "https://example.com/sale?x=1"}
        exists = await rpc.request("shortlink", "create", link="promo", url="https://example.com/other")
        assert isinstance(exists, ErrorResponse) and exists.statusCode == 409
        for bad in ("javascript:alert(1)", "ftp://example.com/x", "/relative", "https://x.example/\r\nSet-Cookie: a=b"):
            refused = await rpc.request("shortlink", "create", link="x", url=bad)
            assert isinstance(refused, ErrorResponse) and refused.statusCode == 400, bad
        assert await handle(nc, "in.gen.s.promo") == RedirectResponse(
            location="https://example.com/sale?x=1", data={"link": "promo"})
        missing = await handle(nc, "in.gen.s.nope")
        assert isinstance(missing, ErrorResponse) and missing.statusCode == 404
    kv = await nc.jetstream().key_value("test_shortlinks")
    assert (await kv.get("promo")).value == b"https://example.com/sale?x=1", "links outlive the service"
    await nc.jetstream().delete_key_value("test_shortlinks")


# --- cookiesync ---------------------------------------------------------------------------
async def test_cookiesync_chain_ends_with_pixel(nats_url: str, nc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_URL", "https://t.example.com/")
    async with running("cookiesync", nats_url, nc) as svc:
        partners = svc.app.settings.partners
        first = await handle(nc, "in.gen.cookiesync.step")
        assert isinstance(first, RedirectResponse) and first.data == {"partner": 0}
        assert first.location.startswith("https://sync.partner-a.example/match?ext_id=6462464730849083392&redirect=")
        assert "redirect=https%3A%2F%2Ft.example.com%2Fcookiesync%2Fstep%3Fi%3D1" in first.location
        second = await handle(nc, "in.gen.cookiesync.step", i="1", partner_id="abc")
        assert isinstance(second, RedirectResponse) and second.location.startswith("https://pixel.partner-b.example/")
        assert await handle(nc, "in.gen.cookiesync.step", i=str(len(partners))) == PixelResponse(
            data={"synced": len(partners)})


# --- eventwriter ----------------------------------------------------------------------------
async def test_eventwriter_stores_each_event_once_across_restarts(
    nats_url: str, nc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "events.sqlite"))
    js = nc.jetstream()
    await ensure_stream(js)
    rpc = RPC(lambda: nc)

    async def publish(n: int) -> None:
        key = f"in.gen.ewtest.e{n % 2}"
        event = {**message(key), "id": f"77000000000{n:05d}", "time": 1_700_000_000_000 + n}
        await js.publish(key, wire.encode(event), headers={wire.MSG_ID_HEADER: event["id"]})

    async def count(expected: int) -> bool:
        stored: int = await rpc.request("eventwriter", "count", key="in.gen.ewtest")
        return stored == expected

    async def caught_up() -> bool:
        info = await js.consumer_info(wire.STREAM, "eventwriter_broadcast")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    async with running("eventwriter", nats_url, nc):
        for n in range(3):
            await publish(n)
        await wait_for(lambda: count(3), timeout=10, what="three events stored")
    for n in range(3, 5):  # published while the writer is down
        await publish(n)
    async with running("eventwriter", nats_url, nc):
        await wait_for(lambda: count(5), timeout=10, what="events published while down")
        recent = await rpc.request("eventwriter", "recent", limit=2, key="in.gen.ewtest")
        assert [e["id"] for e in recent] == ["7700000000000004", "7700000000000003"]
    await js.delete_consumer(wire.STREAM, "eventwriter_broadcast")  # the whole stream is delivered again
    async with running("eventwriter", nats_url, nc):
        await wait_for(caught_up, timeout=10, what="the replay acked")
        assert await count(5), "a replay stores nothing twice"
        assert await rpc.request("eventwriter", "count", key="in.gen.ewtest.e0") == 3
    await js.delete_consumer(wire.STREAM, "eventwriter_broadcast")  # leave the shared server as found


async def test_eventwriter_takes_a_burst_in_batches_without_a_failed_write(
    nats_url: str, nc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,500 events at once: every one stored, none redelivered (a commit per event from
    parallel threads made SQLite answer "database is locked", and the events came again)."""
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "burst.sqlite"))
    js = nc.jetstream()
    await ensure_stream(js)
    rpc = RPC(lambda: nc)
    total = 1500
    acks = [js.publish("in.gen.ewburst.e", wire.encode({**message("in.gen.ewburst.e"), "id": f"78000000000{n:05d}"}),
                       headers={wire.MSG_ID_HEADER: f"78000000000{n:05d}"}) for n in range(total)]
    await asyncio.gather(*acks)

    async def all_stored() -> bool:
        stored: int = await rpc.request("eventwriter", "count", key="in.gen.ewburst")
        return stored == total

    async def caught_up() -> bool:
        info = await js.consumer_info(wire.STREAM, "eventwriter_broadcast")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    try:
        async with running("eventwriter", nats_url, nc):
            await wait_for(all_stored, timeout=60, what="the burst stored")
            await wait_for(caught_up, timeout=30, what="the burst acked")
            info = await js.consumer_info(wire.STREAM, "eventwriter_broadcast")
            assert info.num_redelivered == 0, f"{info.num_redelivered} events failed a write and came again"
    finally:
        await js.delete_consumer(wire.STREAM, "eventwriter_broadcast")


# --- reports: the everyday queries over the store ------------------------------------------
def sdk_page(n: int, uid: str, day: int, path: str, ref: str = "", campaign: str = "", session: int = 1) -> dict[str, Any]:
    """A web-SDK page view on 2024-05-0<day>."""
    marks = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": campaign} if campaign else {}
    return {**message("in.gen.track.page", uid=uid), "id": str(7_100_000_000_000_000 + n),
            "time": 1_714_521_600_000 + (day - 1) * 86_400_000 + n * 1000,
            "data": {"page": {"url": f"https://shop.test{path}", "ref": ref}, "sess": {"start": session, "marks": marks}}}


async def test_reports_answer_the_everyday_questions(tmp_path: Path, own_nats: Any, store_client: Any) -> None:
    from support.store import counted, publish, start_store

    proc = start_store(tmp_path, own_nats.url)
    a, b, c = "1000000000000000001", "1000000000000000002", "1000000000000000003"
    events = [
        sdk_page(1, a, 1, "/", "https://www.google.com/q", "spring", session=11),
        sdk_page(2, a, 1, "/shoes", session=11),
        sdk_page(3, b, 1, "/", "https://news.example/x", session=21),
        sdk_page(4, a, 2, "/shoes", session=12),
        sdk_page(5, c, 2, "/", "https://www.google.com/q", "spring", session=31),
    ]
    try:
        await publish(store_client, events)
        await counted(5, proc)
        rpc = RPC(lambda: store_client)
        async with running("reports", own_nats.url, store_client):
            names = await rpc.request("reports", "names")
            assert names == sorted(p.stem for p in (EXAMPLES / "queries").glob("*.sql")) and len(names) == 6

            async def report(query: str, **params: Any) -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = await rpc.request("reports", "report", timeout__=30, query=query,
                                                               since="2024-05-01", **params)
                return rows

            assert await report("page_views_per_day") == [
                {"date": "2024-05-01", "views": 3, "visitors": 2}, {"date": "2024-05-02", "views": 2, "visitors": 2}]
            assert await report("top_pages", limit=1) == [{"page": "/", "views": 3, "visitors": 3}]
            assert await report("top_referrers") == [{"referrer": "www.google.com", "views": 2, "visitors": 2},
                                                     {"referrer": "(direct)", "views": 2, "visitors": 1},
                                                     {"referrer": "news.example", "views": 1, "visitors": 1}]
            assert await report("utm_campaigns") == [
                {"source": "google", "medium": "cpc", "campaign": "spring", "visitors": 2, "views": 2}]
            assert await report("new_vs_returning") == [
                {"date": "2024-05-01", "new_visitors": 2, "returning_visitors": 0, "counted_by": "person"},
                {"date": "2024-05-02", "new_visitors": 1, "returning_visitors": 1, "counted_by": "person"}]
            assert await report("events_per_session") == [
                {"sessions": 4, "avg_events": 1.25, "median_events": 1, "avg_pages": 1.25}]
            missing = await rpc.request("reports", "report", timeout__=30, query="../etc/passwd")
            assert isinstance(missing, ErrorResponse) and missing.statusCode == 404
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


# --- two services talking by rpc.request -----------------------------------------------------
async def test_calltracking_asks_crm(nats_url: str, nc: Any) -> None:
    async with running("calltracking", nats_url, nc) as svc:
        pool = [str(n) for n in svc.app.settings.pool]
        mine = await handle(nc, "in.gen.calltracking.number")
        assert isinstance(mine, Response) and mine.data["phone"] in pool
        assert (await handle(nc, "in.gen.calltracking.number")).data == mine.data, "same visitor, same number"  # type: ignore[union-attr]
        other = await handle(nc, "in.gen.calltracking.number", uid="6462464730849083999")
        assert other.data["phone"] != mine.data["phone"]  # type: ignore[union-attr]
        phone = mine.data["phone"]

        down = await handle(nc, "in.gen.calltracking.who", number=phone, caller="79161234567")
        assert isinstance(down, Response)
        assert down.data == {"visitor": UID, "customer": None, "crm": "unavailable"}, "ServiceUnavailable at once"
        async with running("crm", nats_url, nc):
            known = await handle(nc, "in.gen.calltracking.who", number=phone, caller="+7 (916) 123-45-67")
            assert isinstance(known, Response) and known.data["crm"] == "ok"
            assert known.data["visitor"] == UID and known.data["customer"]["name"] == "Anna Petrova"
            stranger = await handle(nc, "in.gen.calltracking.who", number=phone, caller="70000000000")
            assert stranger.data["customer"] is None and stranger.data["crm"] == "ok"  # type: ignore[union-attr]
        bad = await handle(nc, "in.gen.calltracking.who", number="123", caller="1")
        assert isinstance(bad, ErrorResponse) and bad.statusCode == 400


async def test_calltracking_survives_a_slow_crm(nats_url: str, nc: Any) -> None:
    slow_crm, release = App("crm"), asyncio.Event()

    @slow_crm.expose()
    async def by_phone(phone: str) -> None:
        await release.wait()  # slower than calltracking's crm_timeout

    async with running("calltracking", nats_url, nc) as svc, running(slow_crm, nats_url, nc):
        phone = str(svc.app.settings.pool[0])
        answer = await handle(nc, "in.gen.calltracking.who", number=phone, caller="79161234567")
        assert isinstance(answer, Response) and answer.data["crm"] == "unavailable", "RPCTimeout handled"
        release.set()


# --- band run, as a real process --------------------------------------------------------------
async def test_band_run_example_stops_cleanly_on_sigterm(nats_url: str, nc: Any) -> None:
    env = {**os.environ, "NATS_URL": nats_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "run", str(example("go")), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async def answers() -> bool:
            try:
                await nc.request("$SRV.PING.redirects", b"", timeout=0.5)
                return True
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                return False

        await wait_for(answers, timeout=20, what="band run to answer $SRV.PING.redirects")
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
        assert proc.returncode == 0, stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
