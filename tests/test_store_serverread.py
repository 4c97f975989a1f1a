"""Answers of any size from a store that writes to a ClickHouse server, run without a
server: ``CLICKHOUSE_URL=chdb://<dir>`` gives the server path (clickhouse-connect, its
streaming call, the read-only guard, ``readonly=1``) clickhouse-connect's embedded chDB
client in place of HTTP."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support.store import counted, start_store

from band import RPCError, store

pytestmark = pytest.mark.skipif(importlib.util.find_spec("chdb") is None, reason="needs chDB")


def test_reads_from_the_server_only_as_the_caller_asks_and_stop_when_it_goes_away(tmp_path: Path) -> None:
    """The reading thread stays at most QUEUE_CHUNKS ahead of the caller, and a caller that
    closes its chunks closes the response and the client (a second read runs after it).
    TabSeparated, because clickhouse-connect's chDB client streams it block by block (it
    reads JSON formats whole, where an HTTP server streams them as well)."""
    script = textwrap.dedent("""
        import asyncio, json, sys, time
        from band.store.backend import ServerBackend
        from band.store.results import Request
        from band.store.serverread import QUEUE_CHUNKS, open_answer

        backend = ServerBackend("chdb://" + sys.argv[1])
        backend.command("CREATE DATABASE IF NOT EXISTS stats")

        async def until(condition, what):
            deadline = time.monotonic() + 30
            while not condition():
                assert time.monotonic() < deadline, what
                await asyncio.sleep(0.01)

        async def main():
            answer = open_answer(backend, Request("SELECT number FROM numbers(1000000000)", default_format="TabSeparated"))
            chunks = answer.chunks(4096)
            first = await anext(chunks)
            await until(lambda: answer.read_chunks >= QUEUE_CHUNKS + 1, "the thread reads ahead")
            await chunks.aclose()  # the caller goes away
            await until(lambda: answer.closed, "the response and the client closed")
            after = open_answer(backend, Request("SELECT count() AS n FROM numbers(10)", default_format="TSV"))
            rest = b"".join([c async for c in after.chunks()])
            print(json.dumps({"first": first.split(b"\\n")[:3] == [b"0", b"1", b"2"], "read": answer.read_chunks,
                              "bound": QUEUE_CHUNKS + 1, "format": answer.format, "after": rest.decode()}))

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db")], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["first"] and answer["format"] == "TabSeparated"
    assert answer["read"] <= answer["bound"], answer  # one chunk taken: at most QUEUE_CHUNKS more read
    assert answer["after"] == "10\n"


@pytest.mark.slow
async def test_stream_query_past_one_message_and_the_guard_on_a_server_store(tmp_path: Path, own_nats: Any,
                                                                              store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url, CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}")
    try:
        await counted(0, proc)  # the store is up, on its server, and reads stats.events
        n = 0
        async for row in store.stream("SELECT number AS x FROM numbers({rows:UInt32})", rows=200_000):
            assert row == {"x": n}
            n += 1
        assert n == 200_000  # every row, in order, in several chunks
        # unqualified names read the stats database in a stream, as in the embedded store
        assert [r async for r in store.stream("SELECT currentDatabase() AS db, count() AS n FROM events")] == [
            {"db": "stats", "n": 0}]
        assert await store.query("SELECT currentDatabase() AS db, count() AS n FROM events") == [{"db": "stats", "n": 0}]
        rows = await store.query("SELECT number AS x, repeat('y', 100) AS pad FROM numbers(30000)")
        assert len(rows) == 30_000 and rows[-1]["x"] == 29_999  # past one NATS message: read through the stream
        for sql in ("SELECT * FROM file('/etc/hostname', 'LineAsString')", f"SELECT 1 INTO OUTFILE '{tmp_path}/out'",
                    "INSERT INTO events (id) VALUES (1)"):
            with pytest.raises(RPCError, match=r"store\.query is read-only") as caught:
                [r async for r in store.stream(sql)]
            assert caught.value.code == 400
        assert not (tmp_path / "out").exists()
        with pytest.raises(RPCError, match="leave FORMAT out"):
            [r async for r in store.stream("SELECT 1 FORMAT CSV")]
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
