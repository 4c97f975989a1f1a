"""``band store import``: events one already has, each stored once, through a real running
store (real nats-server, real chDB) or into a stopped store's data directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support.store import UID, count, counted, event, publish, start_store

from band import store
from band.cli.natsserver import NatsServer

pytest.importorskip("chdb")

TABLES = ("events", "activity", "ping", "webhooks")


def band_import(*args: str, cwd: Path, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "band", "store", "import", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def summary(out: subprocess.CompletedProcess[str]) -> str:
    return out.stdout.strip().splitlines()[-1]


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def rich_events(base: int) -> list[dict[str, Any]]:
    """Events that exercise routing (four tables), flattening, copies, ``_extra`` and misfits."""
    page = event(base + 1, page={"url": "https://x.test/a", "query": {"utm_source": "g", "odd_param": "1"}},
                 sess={"num": "not a number", "marks": {"utm_campaign": "spring", "custom": "m"}},
                 data={"button": "buy", "n": 3}, uaparser={"os_family": "iOS", "os_version": [12, 1], "is_tablet": True},
                 fpid="42", odd={"nested": {"thing": [1, {"x": 2}]}}, scroll={"dh": 70000})
    page["td"] = {"ip": "10.0.0.1", "ua": "ua", "host": "x.test"}
    scroll = {**event(base + 2, scroll={"dh": 50, "ch": 2}), "name": "scroll"}
    ping = {**event(base + 3), "name": "Ping"}
    hook = {**event(base + 4, amount=10, items=[{"sku": "a"}]), "service": "webhook", "name": "Payment"}
    return [page, scroll, ping, hook]


async def rows_by_id(table: str) -> dict[int, dict[str, Any]]:
    rows = await store.query(f"SELECT * EXCEPT (stream_seq) FROM stats.{table}", timeout__=10)
    return {int(r["id"]): {k: v for k, v in r.items() if k != "id"} for r in rows}


async def test_an_import_run_twice_stores_each_event_once_and_reports_bad_lines(
        tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    try:
        no_id = {k: v for k, v in event(20).items() if k != "id"}
        lines: list[Any] = [
            event(1), event(2),
            "{not json",                                    # line 3
            event(3),
            [1, 2],                                         # line 5
            no_id,
            {**event(4), "uid": "a visitor"},               # line 7: a uid the uid column cannot hold
            dict(reversed(list(no_id.items()))),            # the same event, keys in another order: one id
            {"hello": "world"},                             # line 9: neither an event nor a row
            event(1),                                       # in the file twice
            {**event(5), "name": "scroll"},
        ]
        path = write_lines(tmp_path / "events.jsonl", lines)
        await counted(0, proc)  # the store answers: the import goes through it
        first = band_import(str(path), "--nats", own_nats.url, cwd=tmp_path)
        assert first.returncode == 1, first.stderr  # bad lines: not 0, though the rest went in
        assert "importing through the running store" in first.stderr
        assert summary(first) == "read 11, stored 5, skipped 2 (already stored), bad 4", first.stdout + first.stderr
        for number, reason in ((3, "not JSON"), (7, "does not fit the uid column"), (9, "neither an event")):
            assert any(line.startswith(f"line {number}: ") and reason in line for line in first.stderr.splitlines()), first.stderr
        assert "line 5: a JSON list, not an object" in first.stderr
        await counted(4, proc)
        assert await count("SELECT count() AS n FROM stats.activity") == 1
        times = await store.query("SELECT toString(id) AS id, timestamp, toString(dateTime) AS at FROM stats.events "
                                  "WHERE uid = {uid:UInt64} ORDER BY timestamp", uid=int(UID), timeout__=10)
        assert [(int(r["timestamp"]), r["at"]) for r in times][:2] == [(1_700_000_000_001, "2023-11-14 22:13:20"),
                                                                       (1_700_000_000_002, "2023-11-14 22:13:20")]
        assert int(times[-1]["timestamp"]) == 1_700_000_000_020  # the id-less event, its own time

        again = band_import(str(path), "--nats", own_nats.url, cwd=tmp_path)
        assert summary(again) == "read 11, stored 0, skipped 7 (already stored), bad 4", again.stdout + again.stderr
        assert await count() == 4 and await count("SELECT count() AS n FROM stats.activity") == 1
        assert await count("SELECT count() AS n FROM stats.bad_rows") == 0
        assert await count("SELECT uniqExact(id) AS n FROM stats.events") == 4
    finally:
        proc.stop()


async def test_imported_events_become_the_rows_the_same_events_make_live(
        tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    try:
        live = rich_events(100)
        await publish(store_client, live)
        await counted(1, proc)
        await counted(1, proc, "SELECT count() AS n FROM stats.webhooks")
        imported = [{**e, "id": str(int(e["id"]) + 1000)} for e in live]  # the store answers (it has stored some)  # the same events under other ids
        out = band_import(str(write_lines(tmp_path / "e.jsonl", imported)), "--nats", own_nats.url, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert summary(out) == "read 4, stored 4, skipped 0 (already stored), bad 0"
        for table in TABLES:
            rows = await rows_by_id(table)
            assert len(rows) == 2, (table, rows)
            one, other = sorted(rows)
            assert other == one + 1000 and rows[one] == rows[other], table
        page = (await rows_by_id("events"))[7_000_000_000_000_101 + 1000]
        assert page["page_query_extra.key"] == ["odd_param"] and page["sess_marks_extra.key"] == ["custom"]
        assert int(page["td_fpid"]) == 42 and "sess_num" in page["extra.key"]  # the copy and the misfit, as live
    finally:
        proc.stop()


async def test_exported_rows_go_into_a_stopped_store_as_they_were(
        tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    (tmp_path / "a").mkdir()
    first = start_store(tmp_path / "a", own_nats.url)
    try:
        await publish(store_client, rich_events(200))
        await counted(1, first)
        await counted(1, first, "SELECT count() AS n FROM stats.webhooks")
        before = {t: await rows_by_id(t) for t in TABLES}
        exported = [r for t in TABLES for r in await store.query(f"SELECT * FROM stats.{t}", timeout__=10)]
    finally:
        first.stop()
    path = write_lines(tmp_path / "rows.jsonl", exported)  # as band sql --format jsonl writes them
    stopped = dict(STORE_DIR=str(tmp_path / "b" / "data"))
    out = band_import(str(path), "--nats", own_nats.url, cwd=tmp_path, **stopped)
    assert out.returncode == 0, out.stderr
    assert f"importing into {tmp_path / 'b' / 'data'} directly" in out.stderr  # no store answers: straight in
    assert summary(out) == "read 4, stored 4, skipped 0 (already stored), bad 0"
    again = band_import(str(path), "--nats", own_nats.url, cwd=tmp_path, **stopped)
    assert summary(again) == "read 4, stored 0, skipped 4 (already stored), bad 0", again.stderr

    (tmp_path / "b").mkdir(exist_ok=True)
    second = start_store(tmp_path / "b", own_nats.url)  # the stream's events were acked by the first
    try:
        await counted(1, second)
        for table in TABLES:
            after = await rows_by_id(table)
            assert after.keys() == before[table].keys(), table
            for id_, row in after.items():
                was = before[table][id_]
                assert row == was, (table, {k: (was.get(k), v) for k, v in row.items() if was.get(k) != v})
    finally:
        second.stop()


def test_demo_events_piped_in_match_band_demo_store(tmp_path: Path) -> None:
    """``band demo --jsonl - | band store import -`` gives the same rows as ``band demo --store``."""
    demo = [sys.executable, "-m", "band", "demo", "--seed", "3", "--visitors", "20", "--days", "2", "--start", "2026-11-01"]
    direct = subprocess.run([*demo, "--store", str(tmp_path / "demo")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert direct.returncode == 0, direct.stderr
    piped = subprocess.run(f"{' '.join(demo)} --jsonl - | {sys.executable} -m band store import - --direct {tmp_path / 'import'}",
                           shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0, piped.stderr
    fingerprint = textwrap.dedent("""
        import json, sys
        from chdb.session import Session
        session = Session(sys.argv[1])
        print(json.dumps({t: session.query(
            f"SELECT count() AS n, sum(cityHash64(* EXCEPT (stream_seq))) AS h FROM stats.{t}", "JSONEachRow").bytes().decode()
            for t in ("events", "activity", "ping", "webhooks", "bad_rows")}))
    """)
    prints = [subprocess.run([sys.executable, "-c", fingerprint, str(tmp_path / d)], capture_output=True, text=True,
                             timeout=120) for d in ("demo", "import")]
    assert all(p.returncode == 0 for p in prints), [p.stderr for p in prints]
    assert prints[0].stdout == prints[1].stdout and '"n":0' not in json.loads(prints[0].stdout)["events"]
    assert summary(piped).startswith("read ") and "bad 0" in summary(piped)


ROCKSTAT = textwrap.dedent("""
    import sys
    from chdb.session import Session
    session = Session(sys.argv[1])
    session.query("CREATE DATABASE IF NOT EXISTS stats")
    session.query('''CREATE TABLE stats.events (id UInt64, uid UInt64, date Date, dateTime DateTime, timestamp UInt64,
        name LowCardinality(String), service LowCardinality(String), channel String, projectId UInt32, td_ip String,
        page_url String, page_query_extra Nested(key String, value String), sess_num UInt16, chwriter_only String,
        extra Nested(key String, value String)) ENGINE = MergeTree ORDER BY (date)''')
    session.query('''INSERT INTO stats.events VALUES
        (6001, 77, '2019-03-01', '2019-03-01 10:00:00', 1551434400000, 'page', 'track', 'http', 0, '1.2.3.4',
         'https://old.test/', ['ref'], ['mail'], 3, 'kept', ['k'], ['v']),
        (6002, 77, '2019-03-02', '2019-03-02 11:00:00', 1551524400000, 'scroll', 'track', 'http', 0, '1.2.3.4',
         'https://old.test/b', [], [], 0, '', [], [])''')
    session.close()
""")


async def test_a_rockstat_table_is_read_from_clickhouse(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    """``--from-clickhouse`` through clickhouse-connect; its chDB client (``chdb://``) stands
    in for a server here (no ClickHouse server where this was written)."""
    made = subprocess.run([sys.executable, "-c", ROCKSTAT, str(tmp_path / "rockstat")], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    proc = start_store(tmp_path, own_nats.url)
    try:
        await counted(0, proc)
        args = ("--from-clickhouse", f"chdb://{tmp_path / 'rockstat'}", "--table", "stats.events", "--nats", own_nats.url)
        out = band_import(*args, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert summary(out) == "read 2, stored 2, skipped 0 (already stored), bad 0"
        rows = await store.query("SELECT toString(id) AS id, toString(dateTime) AS at, page_url, page_query_extra.key AS qk, sess_num, "
                                 "extra.key AS ek, extra.value AS ev FROM stats.events", timeout__=10)
        assert rows == [{"id": "6001", "at": "2019-03-01 10:00:00", "page_url": "https://old.test/", "qk": ["ref"],
                         "sess_num": 3, "ek": ["chwriter_only", "k"], "ev": ["kept", "v"]}]
        assert await count("SELECT count() AS n FROM stats.activity") == 1  # routed as a scroll
        again = band_import(*args, cwd=tmp_path)
        assert summary(again) == "read 2, stored 0, skipped 2 (already stored), bad 0"
    finally:
        proc.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("content, says", [
    ("id,name\n1,page\n2,page\n", "is not JSON lines (line 1: not JSON"),
    ('[{"service": "track"}, {"service": "track"}]\n', "is one JSON array: write one element per line (jq -c '.[]')"),
    ("\x00\x01\x02binary\n", "is not JSON lines"),
])
def test_a_file_that_is_not_json_lines_is_refused_at_once(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "input.txt"
    path.write_text(content)
    out = band_import(str(path), "--direct", str(tmp_path / "data"), cwd=tmp_path)
    assert out.returncode == 2 and says in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "data").exists()


def test_an_unreachable_clickhouse_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()
    out = band_import("--from-clickhouse", f"http://user:secret@127.0.0.1:{port}", "--direct", str(tmp_path / "d"), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"band store import: cannot reach ClickHouse at http://***@127.0.0.1:{port}: "
                                               "Connection refused"]


RSS = textwrap.dedent("""
    import resource, subprocess, sys
    done = subprocess.run(sys.argv[1:])
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr)
    sys.exit(done.returncode)
""")


@pytest.mark.slow
async def test_a_100000_line_import_holds_its_memory(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    total = 100_000
    path = tmp_path / "big.jsonl"
    with open(path, "w") as out:
        out.writelines(json.dumps(event(n, sess={"num": n % 7, "marks": {"utm_source": "s"}}, user={"tz": "UTC"})) + "\n" for n in range(total))
    proc = start_store(tmp_path, own_nats.url)
    try:
        await counted(0, proc)
        ran = subprocess.run([sys.executable, "-c", RSS, sys.executable, "-m", "band", "store", "import", str(path),
                              "--nats", own_nats.url], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert summary(ran) == f"read {total:,}, stored {total:,}, skipped 0 (already stored), bad 0"
        peak_mb = int(ran.stderr.strip().splitlines()[-1])
        assert peak_mb < 150, f"the importer peaked at {peak_mb} MB for a {path.stat().st_size >> 20} MB file"
        store_peak = int(next(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                              if line.startswith("VmHWM")).split()[1]) >> 10
        assert store_peak < 400, f"the store peaked at {store_peak} MB"
        assert await count() == total
    finally:
        proc.stop()
