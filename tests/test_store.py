"""The stock store service as users run it: ``band store`` processes on a real nats-server,
real chDB, events published as the edge publishes them (and through a real edge)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.poll import wait_for
from support.processes import start_edge
from support.store import count, counted, event, publish, start_store

from band import RPCError, store
from band.cli.natsserver import NatsServer

pytest.importorskip("chdb")


async def test_events_land_routed_and_flattened_and_queries_take_parameters(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    try:
        page = event(1, sess={"num": 2, "marks": {"utm_campaign": "spring"}}, data={"button": "buy"},
                     uaparser={"os_family": "iOS", "os_version": [12, 1], "is_tablet": True}, fpid="42",
                     odd={"nested": {"thing": 1}})
        hook = {**event(2, amount=10), "service": "webhook", "name": "Payment"}
        scroll = {**event(3, scroll={"dh": 50}), "name": "scroll"}
        await publish(store_client, [page, hook, scroll])
        await counted(1, proc)
        rows = await store.query(
            "SELECT page_url, sess_num, sess_marks_utm_campaign, data_extra.key AS k, data_extra.value AS v, "
            "extra.key AS ek, uaparser_os_version, uaparser_is_tablet, td_fpid, toString(date) AS d, dateTime "
            "FROM stats.events WHERE id = {id:UInt64}", id=7_000_000_000_000_001)
        assert rows == [{"page_url": "https://x.test/1", "sess_num": 2, "sess_marks_utm_campaign": "spring",
                         "k": ["button"], "v": ["buy"], "ek": ["fpid", "odd_nested_thing"], "uaparser_os_version": [12, 1],
                         "uaparser_is_tablet": 1, "td_fpid": 42, "d": "2023-11-14", "dateTime": "2023-11-14 22:13:20"}]
        await counted(1, proc, "SELECT count() AS n FROM stats.webhooks WHERE name = 'Payment' AND has(extra.key, 'amount')")
        await counted(1, proc, "SELECT count() AS n FROM stats.activity WHERE scroll_dh = 50")
        # parameters are server-side: a quote in a value is just a character
        assert await store.query("SELECT {s:String} AS s, {n:UInt8} + 1 AS n", s="it's", n=2) == [{"s": "it's", "n": 3}]
        with pytest.raises(RPCError) as bad:
            await store.query("SELECT nope FROM stats.events")
        assert bad.value.code == 400 and "nope" in bad.value.message
        for ddl in ("DROP TABLE stats.events", "ALTER TABLE stats.events ADD COLUMN x String",
                    "INSERT INTO stats.events (id) VALUES (1)", "/* hidden */ TRUNCATE TABLE stats.events"):
            with pytest.raises(RPCError) as refused:
                await store.query(ddl)
            assert refused.value.code == 400 and "read-only" in refused.value.message, ddl
        with pytest.raises(RPCError, match="read-only"):  # a SELECT cannot lift readonly either
            await store.query("SELECT 1 SETTINGS readonly = 0")
        big = await store.query("SELECT number, repeat('x', 100) AS pad FROM numbers(20000)")  # past one message:
        assert len(big) == 20000 and big[-1]["number"] == 19999  # read through store.stream, as a small one
        assert await count() == 1, "nothing was dropped"
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


async def test_a_poisonous_value_does_not_stop_the_batch(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    (tmp_path / "store.yml").write_text("tables:\n  events:\n    page_ip: IPv4\n")
    proc = start_store(tmp_path, own_nats.url)
    try:
        events = [event(n, page={"url": f"https://x.test/{n}", "ip": "10.0.0.1"}) for n in range(20)]
        events[5]["data"]["page"]["ip"] = "not-an-ip"  # ClickHouse refuses it: found by halving the batch
        events[7]["data"]["sess"] = {"num": "many"}  # text into UInt16: kept in extra
        events[9]["data"]["page"]["title"] = "t" * 200_000  # over max_value_bytes: the row goes to bad_rows
        await publish(store_client, events)
        await counted(18, proc)
        await counted(2, proc, "SELECT count() AS n FROM stats.bad_rows")
        bad = await store.query("SELECT id, table, reason, message FROM stats.bad_rows ORDER BY id")
        assert [r["id"] for r in bad] == [7_000_000_000_000_005, 7_000_000_000_000_009]
        assert "IPv4" in bad[0]["reason"] and json.loads(bad[0]["message"])["data"]["page"]["ip"] == "not-an-ip"
        assert "max_value_bytes" in bad[1]["reason"] and bad[1]["table"] == "events"
        kept = await store.query("SELECT extra.value AS v FROM stats.events WHERE has(extra.key, 'sess_num')")
        assert kept == [{"v": ["many"]}]
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


async def test_config_change_adds_a_column_and_migrations_run_once(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    try:
        await publish(store_client, [event(1)])
        await counted(1, proc)
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
    (tmp_path / "store.yml").write_text(textwrap.dedent("""\
        tables:
          events:
            page_lang: LowCardinality(String)
        """))
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_daily.sql").write_text(
        "-- page views per day\nCREATE VIEW IF NOT EXISTS stats.daily AS\n"
        "SELECT date, count() AS views FROM stats.events GROUP BY date;\n")
    (tmp_path / "migrations" / "002_once.sql").write_text(
        "CREATE TABLE stats.once (x UInt8) ENGINE = MergeTree ORDER BY x;\nINSERT INTO stats.once VALUES (1);\n")
    for restart in range(2):
        proc = start_store(tmp_path, own_nats.url, name=f"store{restart}")
        try:
            if restart == 0:
                await publish(store_client, [event(2, page={"url": "https://x.test/2", "lang": "de"})])
            await counted(2, proc)
            assert await store.query("SELECT page_lang FROM stats.events WHERE page_lang != ''") == [{"page_lang": "de"}]
            assert await store.query("SELECT name FROM stats.migrations ORDER BY name") == [
                {"name": "001_daily.sql"}, {"name": "002_once.sql"}]
            assert await count("SELECT count() AS n FROM stats.once") == 1, "a migration runs once"
            assert await count("SELECT sum(views) AS n FROM stats.daily") == 2
        finally:
            assert proc.stop() == 0, proc.text()[-3000:]
    assert "column added" in (tmp_path / "store0.log").read_text() and "page_lang" in (tmp_path / "store0.log").read_text()


async def test_band_sql_and_store_insert(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    (tmp_path / "store.yml").write_text(textwrap.dedent("""\
        tables:
          costs:
            _options:
              order_by: (date, campaign)
            date: Date
            campaign: LowCardinality(String)
            cost: Float64
        """))
    proc = start_store(tmp_path, own_nats.url)
    try:
        await publish(store_client, [event(n) for n in range(3)])
        await counted(3, proc)
        assert await store.insert("costs", [{"date": "2024-05-01", "campaign": "spring", "cost": 12.5},
                                            {"date": "2024-05-02", "campaign": "spring", "cost": 7.5}]) == 2
        with pytest.raises(RPCError) as refused:
            await store.insert("events", [{"id": 1}])
        assert refused.value.code == 403
        with pytest.raises(RPCError, match="no table 'nope'"):
            await store.insert("nope", [{"id": 1}])

        def band_sql(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "band", "sql", *args, "--nats", own_nats.url],
                                  capture_output=True, text=True, timeout=60)

        table = band_sql("SELECT campaign, sum(cost) AS cost FROM stats.costs WHERE date >= {d:Date} GROUP BY campaign", "d=2024-05-02")
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines() == ["campaign  cost", "--------  ----", "spring     7.5", "(1 row)"]
        as_json = band_sql("SELECT count() AS n FROM stats.events", "--format", "json")
        assert json.loads(as_json.stdout) == [{"n": 3}]
        as_csv = band_sql("SELECT page_url FROM stats.events ORDER BY id LIMIT 2", "--format", "csv")
        assert as_csv.stdout.splitlines() == ["page_url", "https://x.test/0", "https://x.test/1"]
        bad = band_sql("SELECT FROM WHERE")
        assert bad.returncode == 1 and "band sql:" in bad.stderr and "Syntax error" in bad.stderr
        ddl = band_sql("DROP TABLE stats.events")
        assert ddl.returncode == 1 and "read-only" in ddl.stderr
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


def test_band_sql_without_a_store_says_what_to_do(tmp_path: Path, own_nats: NatsServer) -> None:
    done = subprocess.run([sys.executable, "-m", "band", "sql", "SELECT 1", "--nats", own_nats.url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "band up" in done.stderr


async def test_replay_twice_stores_nothing_twice(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    try:
        await publish(store_client, [event(n) for n in range(50)])
        await counted(50, proc)
        for _ in range(2):
            done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "band", "store", "replay", "--nats", own_nats.url],
                                           capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert "replaying 50 events" in done.stdout and "50 / 50" in done.stderr
            assert await count() == 50
            assert await count("SELECT uniqExact(id) AS n FROM stats.events") == 50
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


@pytest.mark.slow
async def test_sigkill_mid_batch_under_load_loses_and_doubles_nothing(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    """Hits through a real edge while the store is SIGKILLed mid-batch; after a restart
    every hit answered 2xx is in its table exactly once, by a plain count()."""
    env = {"STORE_BATCH_ROWS": "300", "STORE_ACK_WAIT": "2"}
    edge, port = start_edge(own_nats.url, tmp_path)
    proc = start_store(tmp_path, own_nats.url, name="first", **env)
    answered: list[int] = []  # ids of the hits answered 2xx
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            async def hit(query: str) -> bool:
                async with http.get(f"http://127.0.0.1:{port}/track/page?{query}") as r:
                    if r.status < 300:
                        answered.append(int((await r.json())["id"]))
                    return r.status < 300

            async def up() -> bool:
                try:
                    return await hit("warm=1")
                except aiohttp.ClientError:
                    return False

            await wait_for(up, 30, "the edge to answer", procs=[edge])

            async def hits(n: int) -> None:
                for i in range(n):
                    await hit(f"i={i}&utm_source=load")

            load = asyncio.gather(*(hits(400) for _ in range(8)))
            await wait_for(lambda: _rows_over(200), 60, "the store to write", procs=[proc])
            proc.kill()  # SIGKILL, mid-batch: batches of 300 under 8 concurrent clients
            await load
        second = start_store(tmp_path, own_nats.url, name="second", **env)
        try:
            # an answer other than 2xx may or may not have been stored; every 2xx one must be
            stored = "SELECT count() AS n FROM stats.events WHERE id IN {ids:Array(UInt64)}"

            async def all_there() -> bool:
                return await count(stored, ids=answered) == len(answered)

            await wait_for(all_there, 120, f"the {len(answered)} answered hits stored", procs=[second])
            assert await count("SELECT count() AS n FROM stats.events") == await count(
                "SELECT uniqExact(id) AS n FROM stats.events"), "each id once, by a plain count()"
            assert await count(stored, ids=answered) == len(answered) == len(set(answered))
        finally:
            assert second.stop() == 0, second.text()[-3000:]
    finally:
        proc.kill()
        edge.stop()


async def _rows_over(n: int) -> bool:
    return await count() > n


async def test_clickhouse_unreachable_keeps_events_and_says_so(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    from band import current_app
    from band.cli.ports import free_port

    down = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    proc = start_store(tmp_path, own_nats.url, CLICKHOUSE_URL=down)
    try:
        await publish(store_client, [event(n) for n in range(5)])

        async def retrying() -> bool:
            try:
                status = await current_app().rpc.request("store", "status", timeout__=5)
            except RPCError:
                return False
            return bool(status["state"] == "retrying" and status["ok"] is False and status["last_error"])

        await wait_for(retrying, 60, "the store to report ClickHouse unreachable", procs=[proc])
        with pytest.raises(RPCError) as waiting:
            await store.query("SELECT 1", timeout__=10)
        assert waiting.value.code == 503 and "not ready" in waiting.value.message
        info = await store_client.jetstream().stream_info("BAND_EVENTS")
        assert info.state.messages == 5, "the events wait in JetStream"
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


async def test_metrics_count_rows_on_the_stores_metrics_port(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    from band.cli.ports import free_port

    port = free_port()
    proc = start_store(tmp_path, own_nats.url, METRICS_PORT=str(port))
    try:
        await publish(store_client, [event(n) for n in range(3)])
        await counted(3, proc)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        assert 'band_store_rows_total{table="events"} 3.0' in text and "band_store_healthy 1.0" in text
        assert "band_service_requests_total" in text, "beside the service's own metrics"
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
