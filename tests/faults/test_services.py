"""Services failing under load: hung and crashing handlers, a dying enricher, a replica
stopped with SIGTERM. Real edge on a real socket, real service processes where a
signal is the point."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fakes import enrichers_seen, routed, running_edge, unique
from support.poll import pinged, wait_for
from support.processes import Load, metric_value, start_service, write_service

from band import App, response
from band._runtime.connect import connect
from band._runtime.service import Service, ServiceOptions
from band.testing import serve


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
        body = await resp.read()
        try:
            return resp.status, await resp.json(content_type=None)
        except ValueError:
            return resp.status, body


def slow_handlers(svc: str, entered: list[int], release: asyncio.Event, max_inflight: int | None = None, ok_timeout: int = 5000) -> App:
    app = App(svc, {"max_inflight": max_inflight} if max_inflight else None)

    @app.expose.handler(timeout=300)
    async def hang(**_: Any) -> Any:
        await asyncio.sleep(3600)  # never answers

    @app.expose.handler(timeout=1000)
    async def crash(**_: Any) -> Any:
        raise ValueError("connection to db:5432 refused (password=hunter2)")

    @app.expose.handler(timeout=20_000)
    async def block(**_: Any) -> Any:
        entered.append(1)
        await release.wait()
        return response.data({"released": True})

    @app.expose.handler(timeout=ok_timeout)
    async def ok(data: dict[str, Any], **_: Any) -> Any:
        await asyncio.sleep(0.005)
        return response.data({"n": data["n"]})

    return app


async def test_hung_and_crashing_handlers_do_not_stop_the_others(nats_url: str) -> None:
    svc = unique("fkhang")
    entered: list[int] = []
    release = asyncio.Event()
    app = slow_handlers(svc, entered, release)
    async with serve(app, nats_url, ServiceOptions(drain_timeout_s=1.0)), running_edge(nats_url) as (client, edge):
        for name in ("hang", "crash", "block", "ok"):
            await routed(edge, f"in.gen.{svc}.{name}")
        base = str(client.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            blocked = [asyncio.create_task(get(session, f"{base}/{svc}/block")) for _ in range(8)]
            await wait_for(lambda: len(entered) == 8, timeout=10, what="8 requests hanging in the handler")

            gate = asyncio.Semaphore(16)

            async def one(path: str) -> tuple[str, float, int, Any]:
                async with gate:
                    started = asyncio.get_running_loop().time()
                    status, body = await get(session, base + path)
                    return path, asyncio.get_running_loop().time() - started, status, body

            paths = [f"/{svc}/hang"] * 10 + [f"/{svc}/crash"] * 10 + [f"/{svc}/ok?n={i}" for i in range(300)]
            results = await asyncio.gather(*(one(p) for p in paths))
            still_blocked = sum(not t.done() for t in blocked)
            release.set()
            released = await asyncio.gather(*blocked)

    for path, seconds, status, body in results:
        if path.endswith("/hang"):
            assert status == 504 and body["message"], (status, body)
            assert seconds < 5.0, f"a hung handler held its request {seconds:.1f}s (timeout 0.3 s)"
        elif path.endswith("/crash"):
            assert (status, body) == (500, {"message": "Internal Server Error"})
        else:
            assert status == 200 and body == {"n": path.rsplit("=", 1)[1]}, (path, status, body)
    assert still_blocked == 8, "the blocked requests should still be waiting while the others were answered"
    assert released == [(200, {"released": True})] * 8


async def test_hung_handlers_do_not_use_up_the_service(nats_url: str) -> None:
    """A handler that never returns is cut at its timeout in the service too (style.md §5:
    each call inside ``fail_after(timeout)``), so hung calls cannot fill ``max_inflight``,
    stop every other request of the service, and make its stop hang."""
    svc = unique("fkfill")
    entered: list[int] = []
    release = asyncio.Event()
    app = slow_handlers(svc, entered, release, max_inflight=16, ok_timeout=1000)
    nc = await connect(nats_url, name=svc)
    service = Service(app, nc, ServiceOptions(max_inflight=16, drain_timeout_s=1.0))
    await service.start()
    stop_hangs = False
    try:
        async with running_edge(nats_url) as (client, edge):
            await routed(edge, f"in.gen.{svc}.hang")
            await routed(edge, f"in.gen.{svc}.ok")
            hung = await asyncio.gather(*(client.get(f"/{svc}/hang", timeout=aiohttp.ClientTimeout(total=10)) for _ in range(40)))
            assert [r.status for r in hung] == [504] * 40
            after = [await client.get(f"/{svc}/ok?n={i}", timeout=aiohttp.ClientTimeout(total=10)) for i in range(3)]
            statuses = [r.status for r in after]
    finally:
        try:
            async with asyncio.timeout(8):  # drain 1 s, then in-flight work is cancelled
                await service.stop()
        except TimeoutError:
            stop_hangs = True
        await nc.close()
    assert statuses == [200] * 3 and not stop_hangs, (
        f"after 40 hung calls (each past its 300 ms timeout) the service answers {statuses} and its stop "
        f"{'hangs' if stop_hangs else 'works'}: hung handler tasks keep their max_inflight slots "
        "(a handler called with no time limit would hold its slot in the gate, which then blocks the NATS callback, "
        "so sub.drain() in stop() never returns)"
    )


ENRICHER = """
from band import expose

@expose.enricher(keys=["in.gen.{track}"])
async def add(key, **_):
    return {{"from": "doomed"}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("death", ["SIGKILL", "SIGSTOP"])
async def test_dead_enricher_costs_at_most_one_deadline_until_discovery_drops_it(
    nats_url: str, tmp_path: Path, death: str
) -> None:
    track, alive, doomed = unique("fktrk"), unique("fkalive"), unique("fkdoomed")
    key = f"in.gen.{track}.page"
    handler = App(track)

    @handler.expose.handler(timeout=2000)
    async def page(data: dict[str, Any], **_: Any) -> Any:
        return response.data({"alive": data.get(alive), "doomed": data.get(doomed)})

    alive_app = App(alive)

    @alive_app.expose.enricher(keys=[f"in.gen.{track}"])
    async def add(**_: Any) -> Any:
        return {"from": "alive"}

    proc = start_service(write_service(tmp_path, doomed, ENRICHER.format(track=track)), nats_url)
    try:
        async with serve(handler, nats_url), serve(alive_app, nats_url), running_edge(nats_url, enrich_timeout_ms=200) as (client, edge):
            base = str(client.make_url("")).rstrip("/")
            await routed(edge, key)
            await wait_for(lambda: pinged(edge.nc, doomed), 30, "doomed enricher up", procs=[proc])
            await enrichers_seen(edge, key, {alive, doomed})
            async with aiohttp.ClientSession() as session:
                for _ in range(10):
                    assert await get(session, f"{base}/{track}/page") == (200, {"alive": {"from": "alive"}, "doomed": {"from": "doomed"}})

                proc.kill() if death == "SIGKILL" else proc.signal(signal.SIGSTOP)
                timeouts = {"service": doomed}
                hits = 0
                rounds: list[float] = []
                while True:  # keep hitting; every hit must answer, with the live enricher's data
                    before = await metric_value(session, base, "band_edge_enricher_timeouts_total", timeouts)
                    for _ in range(10):
                        status, body = await get(session, f"{base}/{track}/page")
                        hits += 1
                        assert status == 200 and body["alive"] == {"from": "alive"}, (status, body)
                    after = await metric_value(session, base, "band_edge_enricher_timeouts_total", timeouts)
                    rounds.append(after - before)
                    dropped = doomed not in edge.discovery.snapshot.enricher_services(key)
                    if dropped and after == before:
                        break
                    assert hits < 400, f"the dead enricher still costs the deadline after {hits} hits: {rounds}"
                late = await metric_value(session, base, "band_edge_enricher_timeouts_total", timeouts)
                for _ in range(20):  # dropped: no more deadlines
                    assert await get(session, f"{base}/{track}/page") == (200, {"alive": {"from": "alive"}, "doomed": None})
                assert await metric_value(session, base, "band_edge_enricher_timeouts_total", timeouts) == late
        assert late <= hits  # one deadline per hit at most
        if death == "SIGSTOP":  # still subscribed but frozen: hits waited until discovery dropped it
            assert late >= 1
        print(f"\nenricher {death}: {hits + 30} hits all 200; {int(late)} paid the 200 ms deadline before discovery dropped it")
    finally:
        if proc.alive():
            proc.signal(signal.SIGCONT)
        proc.kill()


REPLICA = """
import asyncio, os
from band import expose, response

@expose.handler(timeout=5000)
async def work(data, **_):
    await asyncio.sleep(0.05)
    return response.data({"pid": os.getpid(), "n": data["n"]})
"""


@pytest.mark.slow
async def test_sigterm_on_a_replica_under_load_fails_no_request(nats_url: str, tmp_path: Path) -> None:
    svc = unique("fkrep")
    path = write_service(tmp_path, svc, REPLICA)
    first = start_service(path, nats_url, "first")
    second = start_service(path, nats_url, "second")
    try:
        async with running_edge(nats_url) as (client, edge):
            base = str(client.make_url("")).rstrip("/")
            await routed(edge, f"in.gen.{svc}.work")
            async with aiohttp.ClientSession() as session:
                async def both_answer() -> bool:
                    pids = set()
                    for _ in range(20):
                        status, body = await get(session, f"{base}/{svc}/work?n=0")
                        if status == 200 and isinstance(body, dict) and "pid" in body:
                            pids.add(body["pid"])
                    return pids == {first.pid, second.pid}

                await wait_for(both_answer, 30, "both replicas answer", procs=[first, second])
                hits = 1200
                load = Load(session, base, [f"/{svc}/work?n={i}" for i in range(hits)], workers=16, limit=hits).start()
                await wait_for(lambda: len(load.answers) >= 300, 30, "load under way", procs=[first, second])
                load.phase = "stopping"
                term_at = time.monotonic()
                first.signal(signal.SIGTERM)
                await wait_for(lambda: not first.alive(), 30, "first replica exits")
                load.phase = "gone"
                await load.finished(60)
        code = first.stop()
    finally:
        first.stop()
        second.stop()

    answers = load.answers
    failed = [(a.status, a.body[:100], a.error) for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed around the SIGTERM: {failed[:5]}"
    by = {phase: {a.json()["pid"] for a in answers if a.phase == phase} for phase in ("start", "stopping", "gone")}
    assert by["start"] == {first.pid, second.pid}
    finished_late = [a for a in answers if a.json()["pid"] == first.pid and a.done_at > term_at]
    assert finished_late, "no request was in flight on the stopped replica at SIGTERM"
    assert by["gone"] <= {second.pid}
    assert sorted(int(a.json()["n"]) for a in answers) == list(range(hits))
    assert code == 0
    events = [line.get("event") for line in first.json_lines()]
    assert "service stopped" in events and "in-flight requests cancelled at stop" not in events
    print(f"\nsigterm: {hits} hits through the edge, 16 concurrent, 0 failed; "
          f"{len(finished_late)} answered by the replica after its SIGTERM")
