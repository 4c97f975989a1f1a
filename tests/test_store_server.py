"""The store against a ClickHouse server (clickhouse-connect): runs only when
``CLICKHOUSE_URL`` points at one, e.g. ``CLICKHOUSE_URL=http://localhost:8123``.

Each test uses a database of its own (``database:`` in its store.yml) and drops it afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.store import count, counted, event, publish, start_store

from band import RPCError, store
from band.store.backend import ServerBackend

URL = os.environ.get("CLICKHOUSE_URL", "")
needs_server = pytest.mark.skipif(not URL, reason="set CLICKHOUSE_URL to a ClickHouse server to run these")


def test_the_server_backend_through_clickhouse_connects_embedded_client(tmp_path: Path) -> None:
    """Without a server, the server path's own code (clickhouse-connect's calls, the
    compact insert with its column list, parameters, the read-only guard, error mapping) runs
    against clickhouse-connect's chDB client (``chdb://`` URLs), in a child process."""
    pytest.importorskip("chdb")
    script = textwrap.dedent("""
        import json, sys
        from band.store.backend import ServerBackend, StoreError
        from band.store.config import load
        from band.store.migrate import ensure
        from band.store.rows import RowBuilder
        backend = ServerBackend("chdb://" + sys.argv[1])
        config = load()
        ensure(backend, config)
        builder = RowBuilder(config)
        events = [json.loads(line) for line in sys.stdin]
        lines = [builder.encode(table, row) for table, _, _, row in map(builder.line, events)]
        fmt, columns = builder.form("events")
        backend.insert("stats", "events", b"\\n".join(lines), fmt, columns)
        found = backend.select("SELECT count() AS n, min(char_ls) AS ls FROM stats.events WHERE id >= {low:UInt64}",
                               {"low": 7_000_000_000_000_001}, readonly=True)["rows"][0]
        refused = {}
        for sql in ("CREATE TABLE stats.x (a UInt8) ENGINE = Memory", "SELECT * FROM file('/etc/hostname', 'LineAsString')",
                    "SELECT file('/etc/hostname')", f"SELECT 1 INTO OUTFILE '{sys.argv[1]}.out'", "SELECT 1; DROP TABLE stats.events"):
            try:
                backend.select(sql, readonly=True)
                refused[sql] = "ran"
            except StoreError as exc:
                refused[sql] = exc.code
        print(json.dumps({"n": int(found["n"]), "ls": found["ls"], "refused": refused}))
    """)
    events = [event(n) for n in range(3)]
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db")], input="\n".join(map(json.dumps, events)),
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["n"] == 2 and answer["ls"] == -1, "parameters, the compact insert and DEFAULT -1 as with chDB"
    assert set(answer["refused"].values()) == {164}, answer["refused"]  # the parse guard's READONLY, as with chDB
    assert not (tmp_path / "db.out").exists()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    name = f"band_test_{uuid.uuid4().hex[:8]}"
    (tmp_path / "store.yml").write_text(f"database: {name}\n")
    yield name
    backend = ServerBackend(URL)
    backend.command(f"DROP DATABASE IF EXISTS `{name}`")
    backend.close()


@needs_server
async def test_server_store_writes_queries_and_refuses_ddl(tmp_path: Path, own_nats: Any, store_client: Any, database: str) -> None:
    proc = start_store(tmp_path, own_nats.url, CLICKHOUSE_URL=URL)
    try:
        await publish(store_client, [event(n) for n in range(10)])
        await counted(10, proc, f"SELECT count() AS n FROM {database}.events")
        rows = await store.query(f"SELECT page_url FROM {database}.events WHERE id = {{id:UInt64}}", id=7_000_000_000_000_003)
        assert rows == [{"page_url": "https://x.test/3"}]
        with pytest.raises(RPCError, match="read-only"):
            await store.query(f"DROP TABLE {database}.events")
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


@needs_server
async def test_two_replicas_share_the_consumer_and_store_each_event_once(tmp_path: Path, own_nats: Any, store_client: Any, database: str) -> None:
    first = start_store(tmp_path, own_nats.url, name="a", CLICKHOUSE_URL=URL)
    second = start_store(tmp_path, own_nats.url, name="b", CLICKHOUSE_URL=URL)
    try:
        await publish(store_client, [event(n) for n in range(2000)])
        await counted(2000, first, f"SELECT count() AS n FROM {database}.events")
        assert await count(f"SELECT uniqExact(id) AS n FROM {database}.events") == 2000
    finally:
        assert first.stop() == 0 and second.stop() == 0
