"""The overview's reconciliation with a real edge, a real store and a real panel: its
numbers are the ones the test counted itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fakes import BROWSER
from support.poll import wait_for
from support.processes import edge_healthy, start_edge
from support.store import counted, start_store

from band.cli.natsserver import NatsServer
from band.cli.ports import free_port
from band.panel.app import running
from band.panel.config import PanelConfig

pytest.importorskip("chdb")

TOKEN = "test-token-0123456789"
HITS = 25


async def test_overview_reconciles_the_last_hour_with_what_was_sent(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    store = start_store(tmp_path, own_nats.url)
    edge, port = start_edge(own_nats.url, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(headers={"User-Agent": BROWSER}) as http:  # a person, not a crawler
            await wait_for(lambda: edge_healthy(http, base), 30, "edge healthy", procs=[edge])
            await counted(0, store)  # the store answers
            ok = 0
            for n in range(HITS):
                async with http.get(f"{base}/track/page?n={n}") as resp:
                    ok += 200 <= resp.status < 300
            # a value over the store's max_value_bytes: answered 2xx, then kept in bad_rows
            async with http.post(f"{base}/track/page", data=json.dumps({"page": {"title": "t" * 70_000}}),
                                 headers={"Content-Type": "application/json"}) as resp:
                ok += 200 <= resp.status < 300
            assert ok == HITS + 1
            async with http.get(f"{base}/metrics/minutes") as resp:
                minutes = await resp.json()
            assert minutes["answered"] == minutes["published"] == HITS + 1
            assert {r["key"] for r in minutes["minutes"]} == {"track/page"}
            await counted(HITS, store)
            await counted(1, store, "SELECT count() AS n FROM stats.bad_rows")

            config = PanelConfig(port=free_port(), nats_url=own_nats.url, token=TOKEN, edge_urls=(base,), interval_s=0.5)
            async with running(config) as panel:
                seen: dict[str, Any] = {}

                async def reconciled() -> bool:
                    async with http.get(f"{panel}/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                        seen.update((await resp.json())["reconcile"])
                    return seen.get("stored") == HITS

                await wait_for(reconciled, 30, "the overview's reconciliation", step=0.3, procs=[edge, store])
                assert (seen["accepted"], seen["published"], seen["in_stream"], seen["stored"], seen["failed"], seen["flagged"]) \
                    == (HITS + 1, HITS + 1, HITS + 1, HITS, 1, 0), seen
                assert seen["pending"] == 0 and "on the way" not in seen["picture"] and "−" not in seen["picture"], seen
                assert seen["lag"]["p50_ms"] is not None and seen["lag"]["p99_ms"] >= seen["lag"]["p50_ms"], seen
                assert seen["notes"] == [] and f"{HITS:,} + 1 failed" in seen["picture"], seen
    finally:
        edge.stop()
        assert store.stop() == 0, store.text()[-3000:]
