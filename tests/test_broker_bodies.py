"""The body budget: a burst of big POSTs gets 200s and 503s (Retry-After), never a 500,
loses no answered event, and leaves the edge's memory bounded and given back.

A real edge process (its RSS is read from /proc), real sockets, a real nats-server.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fakes import unique
from support.poll import wait_for
from support.processes import edge_healthy, memory, start_edge, stream_ids

from broker.bodies import BodyBudget, OverBudget

MiB = 1024 * 1024


async def test_the_budget_refuses_past_its_limit_and_gives_back() -> None:
    budget = BodyBudget(100)
    with budget.hold() as first, budget.hold() as second:
        first.take(60)
        with pytest.raises(OverBudget, match="busy"):
            second.take(41)
        second.take(40)
        assert budget.used == 100
    assert budget.used == 0
    with budget.hold() as third:
        third.take(100)  # all of it again, once the others are answered


@pytest.mark.slow
async def test_a_burst_of_big_posts_stays_within_the_budget(nc: Any, nats_url: str, tmp_path: Path) -> None:
    """200 concurrent 1 MB POSTs against a 16 MiB budget. Without a budget such a burst
    took the edge to gigabytes, and most of it stayed resident afterwards."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc to read the edge's memory")
    budget = 16 * MiB
    svc = unique("burst")
    edge, port = start_edge(nats_url, tmp_path, EDGE_BODY_BUDGET_BYTES=str(budget), EDGE_STREAM_STORAGE="memory")
    base = f"http://127.0.0.1:{port}"
    body = b'{"blob": "' + b"x" * (1_000_000 - 12) + b'"}'
    statuses: Counter[int] = Counter()
    stored_ids: list[str] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await wait_for(lambda: edge_healthy(session, base), 30, "edge healthy", procs=[edge])
            before = memory(edge.pid)["VmRSS"]

            async def post() -> None:
                async with session.post(f"{base}/{svc}/page", data=body, headers={"Content-Type": "application/json"},
                                        timeout=aiohttp.ClientTimeout(total=120)) as resp:
                    statuses[resp.status] += 1
                    answer = await resp.json()
                    if resp.status == 200:
                        stored_ids.append(answer["id"])
                    elif resp.status == 503:
                        assert resp.headers["Retry-After"] == "1" and "busy" in answer["message"], answer

            await asyncio.gather(*(post() for _ in range(200)))
            peak = memory(edge.pid)["VmHWM"]
            settled = before + 2 * budget
            await wait_for(lambda: memory(edge.pid)["VmRSS"] <= settled, timeout=20, what=f"the edge's RSS back under {settled / MiB:.0f} MiB "
                           f"(was {memory(edge.pid)['VmRSS'] / MiB:.0f} MiB)", procs=[edge])
        stored = await stream_ids(nc.jetstream(), f"in.gen.{svc}.page", batch=8)
    finally:
        code = edge.stop()
    print(f"\nburst: {dict(statuses)}; edge RSS {before / MiB:.0f} MiB before, peak {peak / MiB:.0f} MiB, budget {budget / MiB:.0f} MiB")
    assert code == 0, edge.text()[-3000:]
    assert set(statuses) <= {200, 503} and statuses[200] > 0 and statuses[503] > 0, statuses
    assert stored == Counter(stored_ids), "every 200 stored once, nothing refused stored"
    # each body in flight costs a few times its size (its bytes, its fields, the event for NATS),
    # and each refused connection what aiohttp buffered of it before the answer
    assert peak - before < 20 * budget, f"peak RSS {peak / MiB:.0f} MiB over a {before / MiB:.0f} MiB baseline"
