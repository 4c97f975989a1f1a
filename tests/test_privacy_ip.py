"""The edge's IP policy: what each setting keeps of td.ip, that enrichers still see the
whole address, and that with `truncate` the raw address is nowhere after them."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fakes import BROWSER, enrichers_seen, running_edge
from support.poll import wait_for
from support.sdk import arrivals
from support.store import counted, start_store

from band import App, ConfigError, store, wire
from band.cli.natsserver import NatsServer
from band.testing import serve
from broker.builtin_enrichers import fpid
from broker.config import EdgeConfig
from broker.privacy import DailyKey, IpPolicy, truncate

RAW = "109.252.93.158"  # geoip2fast maps it, and its /24, to RU (PJSC Moscow city telephone network)
CUT = "109.252.93.0"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DAY = 86400.0


def message(ip: str, project: int = 0) -> dict[str, Any]:
    return {"key": "in.gen.track.page", "projectId": project, "td": {"ip": ip, "ua": "UA"}, "data": {}}


def test_truncate_keeps_the_network() -> None:
    assert truncate(RAW) == CUT and truncate("10.1.2.3") == "10.1.2.0"
    assert truncate("2a00:1450:4001:80b::200e") == "2a00:1450:4001::"  # the /48
    assert truncate("::ffff:1.2.3.4") == "1.2.3.0"  # an IPv4 client of a dual-stack socket
    assert truncate("not an address") == ""


def test_each_policy_and_the_per_project_override() -> None:
    key = DailyKey("s3cret", clock=lambda: 20_000 * DAY)
    policy = IpPolicy("truncate", {"7": "keep", "8": "drop", "9": "hash"}, key)
    for project, want in ((0, CUT), (7, RAW), (8, "")):
        msg = message(RAW, project)
        td = msg["td"]
        policy.apply(msg)
        assert msg["td"]["ip"] == want, project
        assert td["ip"] == RAW  # replaced, never changed in place: a socket's frames share one td
    hashed = message(RAW, 9)
    policy.apply(hashed)
    assert len(hashed["td"]["ip"]) == 16 and RAW not in hashed["td"]["ip"] and hashed["td"]["ua"] == "UA"
    empty = {"key": "k", "projectId": 0, "td": {"ip": ""}}
    policy.apply(empty)
    assert empty["td"] == {"ip": ""}


def test_hash_is_stable_within_a_day_and_differs_across_days() -> None:
    now = [20_000 * DAY + 10]
    key = DailyKey("s3cret", clock=lambda: now[0])
    policy = IpPolicy("hash", {}, key)

    def hashed(ip: str) -> str:
        msg = message(ip)
        policy.apply(msg)
        return str(msg["td"]["ip"])

    morning = hashed(RAW)
    now[0] += DAY - 20  # 23:59:50 UTC, the same day
    assert hashed(RAW) == morning and hashed("109.252.93.159") != morning
    now[0] += 20  # the next UTC day
    assert hashed(RAW) != morning
    # the same secret on another edge agrees; another secret (or none: random per process) does not
    assert IpPolicy("hash", {}, DailyKey("s3cret", clock=lambda: now[0])).value("hash", RAW) == hashed(RAW)
    assert IpPolicy("hash", {}, DailyKey("other", clock=lambda: now[0])).value("hash", RAW) != hashed(RAW)
    assert IpPolicy("hash", {}, DailyKey(clock=lambda: now[0])).value("hash", RAW) != hashed(RAW)


@pytest.mark.parametrize("changes,named", [
    ({"ip_policy": "mask"}, "ip_policy"),
    ({"ip_policies": {"3": "blur"}}, "ip_policies['3']"),
    ({"ip_policies": {"shop": "keep"}}, "ip_policies: 'shop'"),
    ({"consent": "maybe"}, "consent"),
])
def test_bad_settings_are_a_config_error_naming_them(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        EdgeConfig(**changes)


async def test_drop_and_hash_on_the_wire(nc: Any, nats_url: str) -> None:
    headers = {"User-Agent": BROWSER, "X-Real-IP": RAW}  # the test client's 127.0.0.1 is a trusted proxy
    yesterday = time.time() - DAY
    async with arrivals(nc, "in.gen.ippolicy.>") as seen:
        async with running_edge(nats_url, ip_policy="drop", ip_policies={"5": "hash"}, privacy_secret="k") as (client, _):
            assert (await client.get("/ippolicy/page", headers=headers)).status == 200
            assert (await client.get("/ippolicy/page/5", headers=headers)).status == 200
        dropped, hashed = await seen.take(2)
    assert dropped["td"]["ip"] == "" and dropped["td"]["ua"] == BROWSER
    assert hashed["projectId"] == 5 and hashed["td"]["ip"] == IpPolicy("hash", {}, DailyKey("k")).value("hash", RAW)
    assert IpPolicy("hash", {}, DailyKey("k", clock=lambda: yesterday)).value("hash", RAW) != hashed["td"]["ip"]  # another day's


@pytest.mark.slow
async def test_truncate_leaves_no_raw_address_anywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture, own_nats: NatsServer,
                                                       store_client: Any) -> None:
    """The default policy: enrichers (the example geoip, a recording one) see the whole
    address; the stream, every store table, listeners (durable and not), the edge's logs
    at INFO and the store's log see only its /24, and geo is filled all the same."""
    caplog.set_level(logging.INFO)
    recorder = App("ipseen")
    enriched: list[str] = []
    heard: list[bytes] = []

    @recorder.expose.enricher(props={"ip": "td.ip"}, keys=["in.gen.track"])
    async def see(ip: str, **params: Any) -> None:
        enriched.append(ip)

    @recorder.expose.listener(keys=["in.gen.track"])
    async def hear(**message: Any) -> None:
        heard.append(wire.encode(message))

    @recorder.expose.listener(keys=["in.gen.track"], durable=True, deliver="all")
    async def keep(**message: Any) -> None:
        heard.append(wire.encode({k: v for k, v in message.items() if k != "attempt__"}))

    srv, nc = own_nats, store_client
    proc = start_store(tmp_path, srv.url)
    try:
        async with serve(EXAMPLES / "geoip", srv.url), serve(recorder, srv.url), arrivals(nc, "in.gen.track.>") as seen, \
                running_edge(srv.url, enrich_timeout_ms=3000) as (client, edge):
            await enrichers_seen(edge, "in.gen.track.page", {"geoip", "ipseen"})
            resp = await client.get("/track/page?x=1", headers={"User-Agent": BROWSER, "X-Real-IP": RAW, "X-Forwarded-For": f"{RAW}, 10.0.0.1"})
            assert resp.status == 200
            published = (await seen.take(1))[0]
            await wait_for(lambda: len(heard) >= 2, timeout=15, what="both listeners")
            await counted(1, proc)
            assert enriched == [RAW]  # the enricher inside the pipeline saw the whole address
            assert published["td"]["ip"] == CUT and published["data"]["geoip"]["country_code"] == "RU"
            info = await nc.jetstream().stream_info(wire.STREAM)
            for seq in range(1, info.state.last_seq + 1):  # every message the stream holds
                kept = await nc.jetstream().get_msg(wire.STREAM, seq)
                assert RAW.encode() not in (kept.data or b""), seq
            for one in heard:
                assert RAW.encode() not in one and CUT.encode() in one
            row = (await store.query("SELECT td_ip, sxgeo_country_iso, toString(td_fpid) AS fp FROM stats.events"))[0]
            assert row == {"td_ip": CUT, "sxgeo_country_iso": "RU", "fp": fpid(CUT, BROWSER)}  # geo, from the example enricher
            assert fpid(RAW, BROWSER) != row["fp"]  # an unkeyed hash of the whole address would give it back
            tables = await store.query("SELECT name FROM system.tables WHERE database = 'stats'")
            assert len(tables) >= 5
            for table in (t["name"] for t in tables):
                hits = await store.query(f"SELECT count() AS n FROM stats.`{table}` WHERE position(formatRow('JSONEachRow', *), {{ip:String}}) > 0",
                                         ip=RAW)
                assert hits == [{"n": 0}], table
            # geo at network level from the truncated address alone (a replay, a later enrichment)
            other = {**published, "key": "in.gen.other.page", "data": {}}  # a key only geoip enriches
            again = await nc.request(wire.enrich_subject("in.gen.other.page"), wire.encode(other), timeout=5)
            assert wire.decode(again.data)["country_code"] == "RU"
    finally:
        assert proc.stop() == 0
    assert RAW not in caplog.text and RAW not in proc.text()
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and RAW in r.getMessage()]


async def test_sockets_and_uploads_follow_the_policy(nc: Any, nats_url: str) -> None:
    headers = {"User-Agent": BROWSER, "X-Real-IP": RAW}
    async with arrivals(nc, "in.gen.ipways.>") as seen, running_edge(nats_url) as (client, _):
        async with client.ws_connect("/wss", headers=headers) as ws:
            await ws.send_str(json.dumps({"service": "ipways", "name": "frame", "id__": 1}))
            assert json.loads((await ws.receive(timeout=10)).data)["statusCode"] == 200
            await ws.send_str(json.dumps({"service": "ipways", "name": "frame", "id__": 2}))  # the socket's td is shared: cut once, kept whole
            assert json.loads((await ws.receive(timeout=10)).data)["statusCode"] == 200
        form = aiohttp.FormData()
        form.add_field("file", b"a,b\n1,2\n", filename="rows.csv", content_type="text/csv")
        assert (await client.post("/upload/ipways/file", data=form, headers=headers)).status == 200
        events = await seen.take(3)
    assert [e["channel"] for e in events] == ["ws", "ws", "http"]
    assert [e["td"]["ip"] for e in events] == [CUT] * 3
