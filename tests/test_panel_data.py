"""The panel's data pages over real parts: the edge's metrics, the live tail, the store, dead letters."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fakes import running_edge
from support.poll import pinged, wait_for

from band import wire
from band._runtime.stream import ensure_stream
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port
from band.panel import edgemetrics, eventcounts
from band.panel.app import running
from band.panel.config import PanelConfig
from band.testing import serve

TOKEN = "data-token-0123456789"
SERVICES = Path(__file__).parent / "panel_services"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def panel(nats_url: str, **extra: Any) -> AsyncIterator[str]:
    config = PanelConfig(port=free_port(), nats_url=nats_url, token=TOKEN, interval_s=0.5, **{"edge_urls": (), **extra})
    async with running(config) as base:
        yield base


async def test_edge_hits_by_status_and_stage_latencies(nats_url: str) -> None:
    async with serve(SERVICES / "greeter", nats_url), running_edge(nats_url) as (client, _edge):
        edge_url = str(client.make_url("")).rstrip("/")
        async with panel(nats_url, edge_urls=(edge_url,)) as base, aiohttp.ClientSession(headers=AUTH) as http:

            async def hits() -> bool:
                for _ in range(10):
                    async with http.get(f"{edge_url}/greeter/hello?who=panel") as resp:
                        await resp.read()
                    async with http.get(f"{edge_url}/nosuch/thing") as resp:
                        await resp.read()
                async with http.get(f"{base}/api/edge") as resp:
                    edge = (await resp.json())["edges"][0]
                return bool(edge["up"] and edge["hits_per_s"].get("200", 0) > 0 and edge["stages"]["total"]["mean_ms"])

            await wait_for(hits, timeout=20, what="edge hits per second on the panel")
            async with http.get(f"{base}/api/charts/statuses.svg") as resp:
                svg = await resp.text()
            assert resp.content_type == "image/svg+xml" and svg.startswith("<svg") and "200" in svg


def test_parse_edge_metrics_and_rates() -> None:
    text = (
        "# TYPE band_edge_requests counter\nband_edge_requests_total{status=\"200\"} 30\nband_edge_requests_total{status=\"404\"} 4\n"
        "# TYPE band_edge_stage_seconds histogram\n"
        "band_edge_stage_seconds_bucket{stage=\"total\",le=\"0.001\"} 10\nband_edge_stage_seconds_bucket{stage=\"total\",le=\"0.01\"} 30\n"
        "band_edge_stage_seconds_bucket{stage=\"total\",le=\"+Inf\"} 30\nband_edge_stage_seconds_sum{stage=\"total\"} 0.09\n"
        "band_edge_stage_seconds_count{stage=\"total\"} 30\n"
        "# TYPE band_edge_enricher_timeouts counter\nband_edge_enricher_timeouts_total{service=\"geo\"} 2\n"
        "# TYPE band_edge_unenriched counter\nband_edge_unenriched_total 7\n"
    )
    before = edgemetrics.parse(text.replace(" 30\n", " 10\n").replace("0.09", "0.01").replace("} 4\n", "} 0\n"))
    rates = edgemetrics.rates(edgemetrics.parse(text), before, 2.0)
    assert rates["hits_per_s"] == {"200": 10.0, "404": 2.0}
    assert abs(rates["stages"]["total"]["mean_ms"] - 4.0) < 1e-6  # type: ignore[index]
    assert rates["stages"]["total"]["p95_ms"] == 10.0  # type: ignore[index]
    assert rates["unenriched"] == 7.0, "hits stored without enrichment, shown on the overview"
    bots = edgemetrics.rates(edgemetrics.parse(text + "# TYPE band_edge_bots counter\n"
                                                      'band_edge_bots_total{action="flag",reason="crawler"} 5\n'
                                                      'band_edge_bots_total{action="drop",reason="spam_ref"} 2\n'), None, 1.0)
    assert bots["bots"] == {"crawler": {"flag": 5.0}, "spam_ref": {"drop": 2.0}}, "bots per reason and action, on the overview"


async def test_live_tail_shows_events_filters_and_samples(nats_url: str, nc: Any) -> None:
    async with panel(nats_url, tail_rate=20) as base, aiohttp.ClientSession(headers=AUTH) as http:
        async with http.ws_connect(f"{base}/api/tail?prefix=in.gen.tailtest") as ws:
            assert (await ws.receive_json())["type"] == "hello"
            frames: list[dict[str, Any]] = []

            async def read() -> None:
                async for msg in ws:
                    frames.append(json.loads(msg.data))

            reader = asyncio.ensure_future(read())
            try:
                async def shown() -> bool:
                    await nc.publish("in.gen.other.x", wire.encode({"uid": "1", "skip": True}))
                    await nc.publish("in.gen.tailtest.page", wire.encode({"key": "in.gen.tailtest.page", "uid": "1234567890", "data": {"a": 1}}))
                    return any(f["type"] == "event" for f in frames)

                await wait_for(shown, timeout=5, what="an event in the tail")
                assert all(f["subject"].startswith("in.gen.tailtest") for f in frames if f["type"] == "event")
                for _ in range(500):  # far past 20/s: the tail samples and says so
                    await nc.publish("in.gen.tailtest.burst", b'{"uid": "1"}')
                await nc.flush()
                await wait_for(lambda: any(f["type"] == "stats" and f["seen"] > f["sent"] for f in frames), timeout=5, what="a stats frame saying it samples")
                assert sum(1 for f in frames if f["type"] == "event") < 300
                await ws.send_json({"prefix": "", "uid": "777777777777"})
                frames.clear()
                await wait_for(
                    lambda: _publish_then(nc, frames, "in.gen.any.x", {"uid": "777777777777"}), timeout=5, what="the uid filter letting its uid through"
                )
                assert all(f["event"]["uid"] == "777777777777" for f in frames if f["type"] == "event")
            finally:
                await ws.close()
                reader.cancel()
        async with aiohttp.ClientSession(headers={**AUTH, "Origin": "http://evil.example"}) as other:
            async with other.get(
                f"{base}/api/tail",
                headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
            ) as resp:
                assert resp.status == 403, "another site's page cannot read the tail"


async def _publish_then(nc: Any, frames: list[dict[str, Any]], subject: str, event: dict[str, Any]) -> bool:
    await nc.publish("in.gen.any.y", b'{"uid": "1"}')
    await nc.publish(subject, wire.encode(event))
    return any(f["type"] == "event" for f in frames)


async def test_store_query_table_csv_and_errors(nats_url: str, nc: Any) -> None:
    async with panel(nats_url) as base, aiohttp.ClientSession(headers=AUTH) as http:
        async with http.post(f"{base}/api/store/query", json={"sql": "SELECT 1"}) as resp:
            assert resp.status == 503 and "store" in (await resp.json())["error"]
        async with http.post(f"{base}/api/store/query?format=csv", json={"sql": "SELECT 1"}) as resp:
            assert resp.status == 503 and "store" in (await resp.json())["error"]
        async with serve(SERVICES / "store", nats_url):  # answers `query` only: the CSV comes in one message
            await nc.publish("in.gen.shop.buy", wire.encode({"service": "shop", "name": "buy", "uid": "1234567890", "id": "1", "data": {"url": "/cart"}}))

            async def rows() -> list[dict[str, Any]]:
                async with http.post(
                    f"{base}/api/store/query", json={"sql": "SELECT service, name, count(*) AS events FROM stats.events GROUP BY service, name"}
                ) as resp:
                    assert resp.status == 200, await resp.text()
                    return list((await resp.json())["rows"])

            await wait_for(lambda: _contains(rows, {"service": "shop", "name": "buy", "events": 1}), timeout=10, what="the stored event")
            async with http.post(f"{base}/api/store/query?format=csv", json={"sql": "SELECT service, name FROM stats.events WHERE service = 'shop'"}) as resp:
                assert resp.status == 200 and resp.content_type == "text/csv"
                assert (await resp.text()).splitlines() == ["service,name", "shop,buy"]
            async with http.post(f"{base}/api/store/query?format=csv", json={"sql": "SELECT '=HYPERLINK(1)' AS a, -1 AS b"}) as resp:
                assert (await resp.text()).splitlines()[1] == "'=HYPERLINK(1),-1", "a formula is quoted, a number is not"
            async with http.post(f"{base}/api/store/query", json={"sql": "DROP TABLE stats.events"}) as resp:
                assert resp.status == 400 and "read-only" in (await resp.json())["error"]
            async with http.post(f"{base}/api/store/query", json={"sql": ""}) as resp:
                assert resp.status == 400
            async with http.get(f"{base}/api/store/saved") as resp:
                assert len((await resp.json())["queries"]) >= 5


async def _contains(rows: Any, row: dict[str, Any]) -> bool:
    return row in await rows()


async def test_dead_letters_list_inspect_replay_drop(nats_url: str, nc: Any) -> None:
    js = nc.jetstream()
    await ensure_stream(js)
    async with serve(SERVICES / "greeter", nats_url), panel(nats_url) as base, aiohttp.ClientSession(headers=AUTH) as http:

        async def letters() -> list[dict[str, Any]]:
            async with http.get(f"{base}/api/deadletters") as resp:
                return [x for x in (await resp.json())["letters"] if x["key"] == "in.gen.greeter.fail"]

        async def count(n: int) -> bool:
            return len(await letters()) >= n

        await js.publish("in.gen.greeter.fail", wire.encode({"key": "in.gen.greeter.fail", "id": "42", "uid": "1234567890", "data": {}}))
        await wait_for(lambda: count(1), timeout=15, what="a dead letter on the panel")
        first = (await letters())[0]
        assert first["service"] == "greeter" and first["method"] == "picky" and "refuses" in first["error"]
        async with http.get(f"{base}/api/deadletters/{first['seq']}") as resp:
            whole = await resp.json()
        assert whole["event"]["id"] == "42" and whole["headers"][wire.DLQ_SUBJECT_HEADER] == "in.gen.greeter.fail"
        async with http.post(f"{base}/api/deadletters/{first['seq']}/replay") as resp:
            replayed = await resp.json()
        assert resp.status == 200 and replayed["key"] == "in.gen.greeter.fail" and replayed["stream_seq"] > 0
        # the listener fails again, so the replayed event comes back as a new dead letter
        await wait_for(lambda: _seqs_other_than(letters, first["seq"]), timeout=15, what="the replayed event dead-lettered again")
        again = (await letters())[0]
        async with http.post(f"{base}/api/deadletters/{again['seq']}/drop") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/api/deadletters/{again['seq']}") as resp:
            assert resp.status == 404
        assert not await letters()


async def _seqs_other_than(letters: Any, seq: int) -> bool:
    found = await letters()
    return bool(found) and all(x["seq"] != seq for x in found)


async def test_events_per_name_from_the_stream_without_a_store(nats_url: str, nc: Any) -> None:
    js = nc.jetstream()
    await ensure_stream(js)
    for _ in range(3):
        await js.publish("in.gen.chart.view", b"{}")
    every = await eventcounts.from_stream(nc, 100_000, top=10_000)  # the shared server holds other tests' events too
    assert sum(every["series"]["chart.view"]) >= 3 and len(every["times"]) == 96
    async with panel(nats_url) as base, aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"{base}/api/charts?fresh=1") as resp:
            data = (await resp.json())["events"]
        assert data["source"] == "stream" and "store_error" in data
        assert len(data["times"]) == 96 and len(data["series"]) <= 10 and sum(map(sum, data["series"].values())) >= 3
        async with http.get(f"{base}/api/charts/events.svg") as resp:
            assert (await resp.text()).startswith("<svg")


async def test_without_jetstream_the_pages_say_so(tmp_path: Path) -> None:
    conf = tmp_path / "plain.conf"
    conf.write_text("# core NATS only: no jetstream block\n")
    with NatsServer(store_dir=tmp_path, config=conf) as server:
        async with serve(SERVICES / "tagger", server.url), panel(server.url) as base, aiohttp.ClientSession(headers=AUTH) as http:

            async def overview() -> dict[str, Any]:
                async with http.get(f"{base}/api/overview") as resp:
                    assert resp.status == 200
                    return dict(await resp.json())

            await wait_for(lambda: _named(overview, "tagger"), timeout=20, what="the service, JetStream or not")
            await wait_for(lambda: _says_jetstream(overview), timeout=20, what="the overview saying JetStream is off")
            async with http.get(f"{base}/api/deadletters") as resp:
                assert resp.status == 503 and "JetStream" in (await resp.json())["error"]
            async with http.get(f"{base}/api/charts?fresh=1") as resp:
                assert resp.status == 200 and (await resp.json())["events"]["series"] == {}


async def _says_jetstream(overview: Any) -> bool:
    return "JetStream" in ((await overview())["jetstream"].get("message") or "")


async def _named(overview: Any, name: str) -> bool:
    return any(s["name"] == name for s in (await overview())["services"])


async def test_the_chart_and_saved_queries_from_a_clickhouse_store(nats_url: str, nc: Any) -> None:
    pytest.importorskip("chdb")
    # its own process: chDB's engine stays out of the test process
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "band", "run", str(SERVICES / "chstore"), "--nats", nats_url)
    try:
        await wait_for(lambda: pinged(nc, "store"), timeout=60, what="the chDB store answering")
        await _chart_and_saved(nats_url)
    finally:
        proc.terminate()
        await proc.wait()


async def _chart_and_saved(nats_url: str) -> None:
    async with panel(nats_url) as base, aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"{base}/api/charts?fresh=1") as resp:
            data = (await resp.json())["events"]
        assert data["source"] == "store", data.get("store_error")
        assert sum(data["series"]["track.page"]) == 2 and sum(data["series"]["hook.in"]) == 1  # the crawler's page left out
        assert "bots excluded" in data["note"]
        async with http.get(f"{base}/api/charts?fresh=1&bots=1") as resp:
            with_bots = (await resp.json())["events"]
        assert sum(with_bots["series"]["track.page"]) == 3 and "bots included" in with_bots["note"]
        async with http.get(f"{base}/api/store/saved") as resp:
            saved = (await resp.json())["queries"]
        for q in saved:
            async with http.post(f"{base}/api/store/query", json={"sql": q["sql"]}) as resp:
                assert resp.status == 200, f"{q['title']}: {await resp.text()}"
                assert (await resp.json())["rows"], q["title"]
        async with http.post(f"{base}/api/store/query", json={"sql": "INSERT INTO stats.events (name) VALUES ('x')"}) as resp:
            assert resp.status == 400, "the store is read-only"
