"""The panel's SQL box with answers of any size: a real panel (in this process, so its memory
is traced) against a real ``band store`` on chDB."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import nats
import pytest
from support.poll import wait_for
from support.processes import Proc
from support.store import event, publish, running_store

from band.cli.ports import free_port
from band.panel.app import running
from band.panel.config import PanelConfig

pytest.importorskip("chdb")

TOKEN = "answers-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENTS = 7
ROWS = 200_000
# ~130 bytes a row: ~26 MB as CSV, ~28 MB as JSON lines, far past one NATS message
BIG = f"SELECT number AS n, toString(number * 7) AS s, repeat('x', 100) AS pad FROM numbers({ROWS})"
PEAK_MB = 12  # a few chunks in flight and the one being written; the whole answer is ~26 MB


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Proc]]:
    with running_store(tmp_path_factory.mktemp("panelanswers")) as running:
        yield running


@asynccontextmanager
async def panel_with_events(url: str, proc: Proc) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """A panel, once the store has stored ``EVENTS`` events."""
    nc = await nats.connect(url)
    try:
        await publish(nc, [event(n) for n in range(EVENTS)])
    finally:
        await nc.close()
    config = PanelConfig(port=free_port(), nats_url=url, token=TOKEN, edge_urls=(), interval_s=0.5)
    async with running(config) as base, aiohttp.ClientSession(headers=AUTH) as http:

        async def stored() -> bool:  # unqualified: the default database is stats
            status, body = await _query(http, base, "SELECT count() AS n FROM events")
            return status == 200 and body["rows"] == [{"n": EVENTS}]

        await wait_for(stored, timeout=60, what=f"{EVENTS} events counted through the panel", step=0.2, procs=[proc])
        yield base, http


async def _query(http: aiohttp.ClientSession, base: str, sql: str) -> tuple[int, Any]:
    async with http.post(f"{base}/api/store/query", json={"sql": sql}) as resp:
        return resp.status, await resp.json()


async def test_a_big_answer_shows_the_first_rows_and_says_how_many(stack: tuple[str, Proc]) -> None:
    async with panel_with_events(*stack) as (base, http):
        status, body = await _query(http, base, BIG)
        assert status == 200, body
        assert len(body["rows"]) == 1_000 and body["rows"][0] == {"n": 0, "s": "0", "pad": "x" * 100}
        assert body["rows"][-1]["n"] == 999
        assert body["total"] == ROWS and body["complete"] is True
        assert "200,000 rows: showing the first 1,000" in body["note"] and "Download CSV" in body["note"]
        status, body = await _query(http, base, "SELECT number AS n FROM numbers(3)")
        assert status == 200 and body["rows"] == [{"n": 0}, {"n": 1}, {"n": 2}] and body["note"] == ""
        status, body = await _query(http, base, "SELECT nosuchcolumn FROM events")
        assert status == 400 and "nosuchcolumn" in body["error"]


async def test_download_csv_streams_every_row_in_bounded_memory(stack: tuple[str, Proc]) -> None:
    async with panel_with_events(*stack) as (base, http):
        tracemalloc.start()
        try:
            lines, first, last = 0, b"", b""
            # a form post, as the page sends it (the browser saves the file as it streams in)
            async with http.post(f"{base}/api/store/query?format=csv", data={"sql": BIG}) as resp:
                assert resp.status == 200 and resp.content_type == "text/csv"
                assert resp.headers["Content-Disposition"].startswith("attachment")
                async for line in resp.content:
                    if not lines:
                        first = line
                    lines += 1
                    last = line
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
        assert lines == ROWS + 1 and first == b"n,s,pad\r\n" and last == b"199999,1399993," + b"x" * 100 + b"\r\n"
        assert peak < PEAK_MB, f"the panel peaked at {peak:.1f} MB of Python memory for a ~26 MB answer"
        # CSV injection: a formula is quoted, a number is not; an error before the first row is JSON
        async with http.post(f"{base}/api/store/query?format=csv", json={"sql": "SELECT '=HYPERLINK(1)' AS a, -1 AS b"}) as resp:
            assert (await resp.text()).splitlines() == ["a,b", "'=HYPERLINK(1),-1"]
        async with http.post(f"{base}/api/store/query?format=csv", data={"sql": "INSERT INTO events (id) VALUES (1)"}) as resp:
            assert resp.status == 400 and "read-only" in (await resp.json())["error"]
