"""Durable listeners under faults: a SIGKILLed consumer resumes where it acked; a listener
that keeps raising is retried with backoff, dead-lettered, and never stalls the stream."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.aio.msg import Msg
from support.fakes import running_edge, unique
from support.poll import pinged, wait_for
from support.processes import Load, start_service, write_service

from band import App, wire
from band._runtime.stream import ensure_stream
from band.testing import serve

RECORDER = """
import asyncio, os
from band import expose

RECORD = os.environ["FK_RECORD"]

@expose.listener(keys=["in.gen.{svc}"], durable=True, ack_wait=2, deliver="all")
async def store(id, attempt__, **message):
    with open(RECORD, "a") as out:  # recorded before the ack: a kill after this line redelivers
        out.write(f"{{id}} {{attempt__}} {{os.getpid()}}\\n")
    await asyncio.sleep(0.01)
"""

BACKLOG, WHILE_DOWN, KILL_AFTER = 1000, 200, 300
MAX_INFLIGHT = 8  # the listener's batch; max_ack_pending is 4x that


def records(path: Path) -> list[tuple[str, int, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:  # a line cut by SIGKILL mid-write is ignored
            out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


async def publish_events(js: Any, svc: str, ids: list[str]) -> None:
    for ident in ids:
        key = f"in.gen.{svc}.ev"
        await js.publish(key, wire.encode({"key": key, "id": ident, "data": {}}), headers={wire.MSG_ID_HEADER: ident})


@pytest.mark.slow
async def test_sigkilled_durable_listener_resumes_where_it_acked(nc: Any, nats_url: str, tmp_path: Path) -> None:
    svc = unique("fkdur")
    js = nc.jetstream()
    await ensure_stream(js)
    record = tmp_path / "seen.txt"
    path = write_service(tmp_path, svc, RECORDER.format(svc=svc), f"max_inflight: {MAX_INFLIGHT}\n")
    first_ids = [f"{svc}-a{i}" for i in range(BACKLOG)]
    later_ids = [f"{svc}-b{i}" for i in range(WHILE_DOWN)]
    await publish_events(js, svc, first_ids)

    proc = start_service(path, nats_url, "first", FK_RECORD=str(record))
    second = None
    try:
        await wait_for(lambda: len(records(record)) >= KILL_AFTER, 30, "first run mid-backlog", procs=[proc])
        proc.kill()  # SIGKILL mid-batch
        before = records(record)
        assert len(before) < BACKLOG, "the backlog finished before the kill; nothing was tested"
        await publish_events(js, svc, later_ids)  # published while the listener is dead

        second = start_service(path, nats_url, "second", FK_RECORD=str(record))
        everything = set(first_ids) | set(later_ids)
        await wait_for(lambda: {r[0] for r in records(record)} >= everything, 40, "every event after the restart", procs=[second])
        await wait_for(lambda: pinged(nc, svc), 10, "second run answers", procs=[second])

        async def all_acked() -> bool:  # the dead run's unacked events come back after ack_wait
            info = await js.consumer_info(wire.STREAM, f"{svc}_store")
            return bool(info.num_pending == 0 and info.num_ack_pending == 0 and info.num_redelivered == 0)

        await wait_for(all_acked, 30, "every event acked, none waiting for redelivery", procs=[second])
    finally:
        proc.kill()
        if second is not None:
            second.stop()

    after = records(record)
    by_id: dict[str, list[int]] = {}
    for ident, attempt, _ in after:
        by_id.setdefault(ident, []).append(attempt)
    assert set(by_id) == set(first_ids) | set(later_ids), "events skipped or invented"
    # what it saw twice it can tell: each delivery of one id carries a different attempt__
    twice = {i: a for i, a in by_id.items() if len(a) > 1}
    assert all(len(set(a)) == len(a) and max(a) >= 2 for a in twice.values()), twice
    # resume where it acked: only the unacked window of the dead process comes again
    first_pid = before[0][2]
    seen_first = {r[0] for r in after if r[2] == first_pid}
    again = {r[0] for r in after if r[2] != first_pid and r[0] in seen_first}
    assert len(again) <= MAX_INFLIGHT * 4, f"{len(again)} events redone after the restart: it did not resume where it acked"
    assert all(a >= 2 for r in after if r[2] != first_pid and r[0] in seen_first for a in [r[1]])
    print(f"\ndurable kill: {BACKLOG + WHILE_DOWN} events, {len(before)} seen before SIGKILL, "
          f"{len(again)} redelivered after restart (attempt__ >= 2), 0 skipped")


async def test_raising_listener_is_dead_lettered_while_the_stream_keeps_flowing(nc: Any, nats_url: str) -> None:
    svc = unique("fkdlq")
    seen: list[tuple[str, int, float]] = []
    dead: list[Msg] = []
    app = App(svc)

    @app.expose.listener(keys=[f"in.gen.{svc}"], durable=True, max_deliver=3, ack_wait=5)
    async def store(id: str, data: dict[str, Any], attempt__: int, **_: Any) -> None:
        seen.append((id, attempt__, time.monotonic()))
        if data.get("poison"):
            raise RuntimeError(f"cannot store {id}: poisoned")

    async def on_dead(msg: Msg) -> None:
        dead.append(msg)

    await nc.subscribe(wire.dlq_subject(svc), cb=on_dead)
    hits, every = 600, 30
    paths = [f"/{svc}/page?n={i}" + ("&poison=1" if i % every == 7 else "") for i in range(hits)]
    async with serve(app, nats_url), running_edge(nats_url) as (client, _edge):
        async with aiohttp.ClientSession() as session:
            base = str(client.make_url("")).rstrip("/")
            load = Load(session, base, paths, workers=8, limit=hits).start()
            await load.finished(60)
        answers = load.answers
        assert [a.status for a in answers if a.status != 200] == []
        poison = {a.json()["id"] for a in answers if "poison" in a.path}
        good = {a.json()["id"] for a in answers} - poison
        assert len(poison) == hits // every
        await wait_for(lambda: len(dead) >= len(poison), timeout=30, what="every poisoned event dead-lettered")
        await wait_for(lambda: good <= {s[0] for s in seen}, timeout=30, what="every good event stored")

    attempts: dict[str, list[tuple[int, float]]] = {}
    for ident, attempt, at in seen:
        attempts.setdefault(ident, []).append((attempt, at))
    for ident in poison:  # retried, with a growing pause, then given up
        tries = attempts[ident]
        assert [t[0] for t in tries] == [1, 2, 3], (ident, tries)
        gaps = [b[1] - a[1] for a, b in itertools.pairwise(tries)]
        assert gaps[0] >= 0.15 and gaps[1] >= 0.3, f"no backoff between retries: {gaps}"
    for ident in good:
        assert [t[0] for t in attempts[ident]] == [1], (ident, attempts[ident])

    assert len(dead) == len(poison)
    assert {json.loads(m.data)["id"] for m in dead} == poison
    for msg in dead:
        ident = json.loads(msg.data)["id"]
        assert msg.headers is not None
        assert msg.headers[wire.ERROR_HEADER] == f"RuntimeError: cannot store {ident}: poisoned"
        assert msg.headers[wire.SERVICE_HEADER] == svc
        assert msg.headers["Band-Subject"] == f"in.gen.{svc}.page"

    # the stream kept flowing: while the first poisoned event was being retried,
    # good events published after it were stored
    first = min(poison, key=lambda i: attempts[i][0][1])
    t1, t3 = attempts[first][0][1], attempts[first][-1][1]
    flowed = [i for i in good if t1 < attempts[i][0][1] < t3]
    assert flowed, "no other event was stored while a poisoned one was retried"
    print(f"\ndlq: {hits} hits via the edge, {len(poison)} poisoned -> 3 tries each -> {wire.dlq_subject(svc)}; "
          f"{len(good)} good stored once; {len(flowed)} stored during the first poisoned event's retries")
