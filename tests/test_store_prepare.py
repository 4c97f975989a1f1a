"""Rows built beside the writer (band/store/prepare.py) and encoded compact (rows.encode),
chDB in a process of its own (band/store/isolated.py): the same rows as before, nothing
lost when a building process dies, no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support.poll import wait_for
from support.store import count, counted, event, gone, publish, spawned, start_store

from band.cli.natsserver import NatsServer
from band.errors import ConfigError
from band.store.config import StoreConfig, load
from band.store.prepare import prepare_with, processes
from band.store.rows import RowBuilder

pytest.importorskip("chdb")


def test_prepare_never_raises_on_bad_data_and_keeps_every_event() -> None:
    builder = RowBuilder(load())
    good = json.dumps(event(1)).encode()
    huge = json.dumps(event(2, page={"title": "t" * 100_000})).encode()
    got = prepare_with(builder, [good, b"{not json", b"[1, 2]", huge],
                       [(11, 1000, 501), (12, 2000, 502), (13, 3000, 503), (14, 4000, 504)])
    assert got.tables == ["events", "bad_rows", "bad_rows", "bad_rows"]
    assert got.ids == [7_000_000_000_000_001, 12, 13, 7_000_000_000_000_002]
    assert got.ms[:3] == [1_700_000_000_001, 2000, 3000]
    fmt, columns = builder.form("events")
    assert fmt == "JSONCompactEachRow" and columns == list(builder.config.tables["events"].columns)
    row = json.loads(got.rows[0])
    assert len(row) == len(columns) and row[columns.index("page_url")] == "https://x.test/1"
    bad_columns = builder.form("bad_rows")[1]
    seqs = [row[columns.index("stream_seq")]] + [json.loads(r)[bad_columns.index("stream_seq")] for r in got.rows[1:]]
    assert seqs == [501, 502, 503, 504], "every row, good or bad, keeps its stream sequence"


def test_build_processes_setting() -> None:
    assert processes("auto", cpus=1) == 0 and processes("auto", cpus=2) == 0 and processes("auto", cpus=4) == 2
    assert processes("auto", cpus=16) == 4
    assert processes("0") == 0 and processes(3) == 3
    with pytest.raises(ConfigError, match="build_processes is 'many'"):
        StoreConfig.from_mapping({**load().raw, "build_processes": "many"})


def test_compact_rows_land_exactly_as_json_each_row_rows(tmp_path: Path) -> None:
    """Every column, DEFAULT expressions and Nested extras included, is the same whether
    a row goes as JSONEachRow (the dict) or JSONCompactEachRow (its encoded array)."""
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from band.store.engines import open_backend
        from band.store.config import load
        from band.store.migrate import ensure
        from band.store.rows import RowBuilder
        config = load()
        backend = open_backend("", Path(sys.argv[1]))
        ensure(backend, config)
        backend.command("CREATE TABLE stats.events_copy AS stats.events")
        builder = RowBuilder(config)
        rows = [builder.build(json.loads(line))[1] for line in sys.stdin]
        backend.insert("stats", "events", b"\\n".join(json.dumps(r).encode() for r in rows))
        fmt, columns = builder.form("events")
        backend.insert("stats", "events_copy", b"\\n".join(builder.encode("events", r) for r in rows), fmt, columns)
        a = backend.select("SELECT * FROM stats.events ORDER BY id")["rows"]
        b = backend.select("SELECT * FROM stats.events_copy ORDER BY id")["rows"]
        print(json.dumps({"same": a == b, "rows": len(a), "char_ls": [r["char_ls"] for r in b],
                          "extra": [r["extra.key"] for r in b]}))
    """)
    events = [event(1), event(2, char={"ls": 1}, odd={"deep": {"x": 1}}, sess={"num": "many"}),
              event(3, page={"url": "https://x.test/é", "title": "ü \u2028"})]
    events[0].pop("time")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db")], input="\n".join(map(json.dumps, events)),
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["same"] and answer["rows"] == 3
    assert answer["char_ls"] == [-1, 1, -1], "an omitted column takes its DEFAULT, as with JSONEachRow"
    assert ["odd_deep_x", "sess_num"] == sorted(answer["extra"][1])


def _workers(pid: int) -> list[int]:
    return [kid for kid, what in spawned(pid).items() if what == "builder"]


async def test_a_killed_building_process_loses_nothing(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url, STORE_BUILD_PROCESSES="1")
    try:
        await publish(store_client, [event(n) for n in range(50)])
        await counted(50, proc)
        workers = _workers(proc.pid)
        assert len(workers) == 1, f"one row-building process, found {workers}"
        os.kill(workers[0], signal.SIGKILL)
        await wait_for(lambda: gone(workers), 10, "the killed process to be gone")
        await publish(store_client, [event(n) for n in range(50, 120)])
        await counted(120, proc)
        assert await count("SELECT uniqExact(id) AS n FROM stats.events") == 120
        await wait_for(lambda: "a row-building process died" in proc.text(), 10, "the warning in the log", procs=[proc])
        await publish(store_client, [event(n) for n in range(120, 130)])
        await counted(130, proc)
        await wait_for(lambda: len(_workers(proc.pid)) == 1, 20, "the pool started again", procs=[proc])
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_no_building_process_outlives_the_store(tmp_path: Path, own_nats: NatsServer, store_client: Any, how: str) -> None:
    proc = start_store(tmp_path, own_nats.url, STORE_BUILD_PROCESSES="2")
    try:
        await publish(store_client, [event(n) for n in range(10)])
        await counted(10, proc)
        workers = list(spawned(proc.pid))
        assert sorted(spawned(proc.pid).values()) == ["builder", "builder", "chdb"]
        if how == "SIGTERM":
            assert proc.stop() == 0, proc.text()[-3000:]
        else:
            proc.kill()
        await wait_for(lambda: gone(workers), 10, f"chDB's and the row-building processes gone after {how}")
    finally:
        proc.kill()


async def test_a_killed_chdb_process_is_started_again_and_loses_nothing(tmp_path: Path, own_nats: NatsServer,
                                                                         store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url, STORE_BUILD_PROCESSES="0")
    try:
        await publish(store_client, [event(n) for n in range(40)])
        await counted(40, proc)
        chdb = [kid for kid, what in spawned(proc.pid).items() if what == "chdb"]
        assert len(chdb) == 1
        os.kill(chdb[0], signal.SIGKILL)
        await wait_for(lambda: gone(chdb), 10, "chDB's process gone")
        await publish(store_client, [event(n) for n in range(40, 100)])
        await counted(100, proc)
        assert await count("SELECT uniqExact(id) AS n FROM stats.events") == 100
        assert [what for what in spawned(proc.pid).values()] == ["chdb"], "one chDB process again"
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


def test_an_encoded_row_holds_no_more_memory_than_its_bytes() -> None:
    """Rows wait in memory for their batch's insert (up to four batches): each must cost
    about its length, not the encoder's whole working buffer."""
    import tracemalloc

    from band.store import body

    row = ["https://shop.example.com/catalog/1"] * 30
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [body.dump(row) for _ in range(500)]
        per_row = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert per_row < 2 * len(kept[0]) + 200, f"{per_row:.0f} bytes held per {len(kept[0])}-byte row"
