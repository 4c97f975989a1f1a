"""Answers of any size through band: ``store.stream``, ``store.query`` past one NATS message,
``band sql`` of 1,000,000 rows in bounded memory, and the default database ``stats``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from support.processes import Proc
from support.store import counted, event, publish, running_store

from band import App, RPCError, store
from band._core.app import reset_current, set_current

EVENTS = 20


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Proc]]:
    with running_store(tmp_path_factory.mktemp("storestream")) as running:
        yield running


async def _as_service(url: str, work: Any) -> Any:
    nc = await nats.connect(url)
    app = App("tester")
    app.nc = nc
    token = set_current(app)
    try:
        return await work()
    finally:
        reset_current(token)
        await nc.close()


async def test_stream_and_query_of_any_size_and_the_default_database(stack: tuple[str, Proc]) -> None:
    url, proc = stack

    async def work() -> None:
        await publish(app_nc(), [event(n) for n in range(EVENTS)])
        await counted(EVENTS, proc)
        # unqualified names read the stats database, in query and in stream
        assert await store.query("SELECT count() AS n FROM events") == [{"n": EVENTS}]
        assert [row async for row in store.stream("SELECT count() AS n FROM events")] == [{"n": EVENTS}]
        n = 0
        async for row in store.stream("SELECT number AS x, repeat('y', 100) AS pad FROM numbers({rows:UInt32})",
                                      rows=50_000):
            assert row["x"] == n
            n += 1
        assert n == 50_000  # ~6 MB: several chunks, more than one NATS message
        rows = await store.query("SELECT number AS x, repeat('y', 100) AS pad FROM numbers(30000)")
        assert len(rows) == 30_000 and rows[-1]["x"] == 29_999  # store.query past one message, as before for small
        with pytest.raises(RPCError, match="read-only"):
            [row async for row in store.stream("INSERT INTO events (id) VALUES (1)")]

    def app_nc() -> Any:
        from band._core.app import current_app

        return current_app().connection()

    await _as_service(url, work)


def _high_water_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@pytest.mark.slow
def test_band_sql_csv_of_a_million_rows_in_bounded_memory(stack: tuple[str, Proc], tmp_path: Path) -> None:
    url, _proc = stack
    out, err = tmp_path / "all.csv", tmp_path / "err.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        popen = subprocess.Popen([sys.executable, "-m", "band", "sql", "--format", "csv", "--nats", url,
                                  "SELECT number AS n, toString(number * 7) AS s FROM numbers(1000000)"],
                                 stdout=stdout, stderr=stderr)
        peak = 0.0
        deadline = time.monotonic() + 90
        while popen.poll() is None and time.monotonic() < deadline:
            peak = max(peak, _high_water_mb(popen.pid))
            time.sleep(0.05)
        assert popen.wait(5) == 0, err.read_text()
    lines = out.read_bytes().splitlines()
    assert len(lines) == 1_000_001 and lines[0] == b"n,s" and lines[-1] == b"999999,6999993"
    assert "1,000,000 rows" in err.read_text() and "rows/s" in err.read_text()
    # the answer is ~14 MB as CSV and would be ~300 MB as 1,000,000 dicts: the CLI holds a few chunks
    assert peak < 150, f"band sql peaked at {peak:.0f} MB"



