"""nats-server SIGKILLed and restarted under load: nothing answered 2xx is lost or doubled.

A real edge process (``python -m broker``) and a real service process (``band run``)
talk to a nats-server this test owns (file-backed JetStream in tmp_path). Load runs
through the edge while the server is killed with SIGKILL and started again on the
same port with the same store directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from support.poll import pinged, wait_for
from support.processes import Load, edge_healthy, start_edge, start_service, stream_ids, write_service

from band import wire
from band.cli.natsserver import NatsServer

ECHO = """
import os
from band import expose, response

RECORD = os.environ["FK_RECORD"]

@expose.listener(durable=True, ack_wait=5)
async def store(id, **message):
    with open(RECORD, "a") as out:
        out.write(id + "\\n")

@expose.handler(timeout=2000)
async def echo(id, data, **message):
    return response.data({"id": id, "by": "echo", "enriched": data.get("fkecho")})

@expose.enricher(keys=["in.gen.fkecho"])
async def mark(key, **_):
    return {"seen": True}

@expose()
async def ping(**params):
    return {"pong": True}
"""

BEFORE, DURING, AFTER = 1500, 60, 1500  # 2xx hits before the kill, 503s during, 2xx after
WORKERS = 8


async def handler_answers(session: aiohttp.ClientSession, base: str) -> bool:
    """A hit on the band handler comes back from the handler, enriched."""
    try:
        async with session.get(f"{base}/fkecho/echo", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return False
            body = await resp.json()
    except (aiohttp.ClientError, TimeoutError):
        return False
    return bool(body.get("by") == "echo" and body.get("enriched") == {"seen": True})


async def rpc_answers(nc: Any) -> bool:
    try:
        reply = await nc.request(wire.rpc_subject("fkecho", "ping"), b"{}", timeout=1)
    except (nats.errors.Error, TimeoutError):
        return False
    return bool(wire.decode(reply.data)["data"] == {"pong": True})


@pytest.mark.slow
async def test_nats_sigkill_and_restart_under_load_loses_nothing(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path / "js").start()  # the port is kept for the restart
    edge, port = start_edge(server.url, tmp_path)
    record = tmp_path / "listened.txt"
    svc = start_service(write_service(tmp_path, "fkecho", ECHO), server.url, FK_RECORD=str(record))
    base = f"http://127.0.0.1:{port}"
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    load: Load | None = None
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for(lambda: edge_healthy(session, base), 30, "edge healthy", procs=[edge])
            await wait_for(lambda: pinged(nc, "fkecho"), 30, "service up", procs=[svc])
            await wait_for(lambda: handler_answers(session, base), 20, "handler routed", procs=[edge, svc])

            load = Load(session, base, ["/track/page", "/fkecho/echo"], workers=WORKERS, limit=20_000).start()
            load.phase = "before"
            await wait_for(lambda: load.count("before", ok=True) >= BEFORE, 60, "load before the kill", procs=[edge, svc])

            load.phase = "outage"
            server.kill()
            await wait_for(
                lambda: sum(1 for a in load.answers if a.phase == "outage" and a.status == 503) >= DURING,
                20, "503 answers while NATS is down", procs=[edge, svc],
            )
            server.start()  # same port, same store directory
            load.phase = "after"
            await wait_for(lambda: load.count("after", ok=True) >= AFTER, 60, "load after the restart", procs=[edge, svc])
            await load.stop()

            # everything came back by itself: edge, handler + enricher subscriptions, RPC
            await wait_for(lambda: edge_healthy(session, base), 20, "edge healthy again", procs=[edge])
            await wait_for(lambda: handler_answers(session, base), 20, "handler + enricher answer again", procs=[edge, svc])
            await wait_for(lambda: rpc_answers(nc), 20, "RPC answers again", procs=[svc])
            async with session.ws_connect(f"{base}/wss?uid=6462464730849083392") as ws:  # the push subscription too

                async def pushed() -> bool:
                    await nc.publish(wire.ws_subject("6462464730849083392"), b'{"back":true}')
                    try:
                        return (await ws.receive_str(timeout=0.5)) == '{"back":true}'
                    except TimeoutError:
                        return False

                await wait_for(pushed, 20, "server push reaches the socket again", procs=[edge])

        answers = load.answers
        ok = [a for a in answers if 200 <= a.status < 300]
        bad = [a for a in answers if not 200 <= a.status < 300]
        ok_ids = [a.json()["id"] for a in ok]
        assert len(set(ok_ids)) == len(ok_ids), "the edge answered the same id twice"

        stored = await stream_ids(nc.jetstream(), "in.>")
        # and the durable listener, whose pulls failed during the outage, got every one of them
        def listened() -> set[str]:
            return set(record.read_text().split()) if record.exists() else set()

        await wait_for(lambda: set(ok_ids) <= listened(), 60, "the durable listener caught up", procs=[svc])
        missing = [i for i in ok_ids if stored[i] == 0]
        doubled = {i: n for i, n in stored.items() if n > 1}
        assert not missing, f"{len(missing)} of {len(ok_ids)} hits answered 2xx are not in the stream: {missing[:5]}"
        assert not doubled, f"events stored more than once: {list(doubled.items())[:5]}"

        # the outage: a clear 503 (a hit caught mid-flight by the kill may time out as 504), never a hang
        statuses = {a.status for a in bad}
        assert statuses <= {503, 504}, (
            f"unexpected answers: {sorted(statuses)} e.g. {[(a.status, a.body[:80], a.error) for a in bad if a.status not in (503, 504)][:3]}"
        )
        assert sum(1 for a in bad if a.status == 504) <= WORKERS, "more 504s than hits that can be in flight at the kill"
        # while the edge knows NATS is down it answers at once; a hit caught mid-flight waits
        # at most its own deadlines: enrich 0.2 s + handler 2 s + JetStream ack 2 s (+2 s slack)
        slowest = max(a.seconds for a in bad)
        typical = sorted(a.seconds for a in bad)[len(bad) // 2]
        assert slowest < 6.2, f"an outage answer took {slowest:.1f}s"
        assert typical < 1.0, f"half the outage answers took more than {typical:.2f}s: not a fast 503"
        assert all(b"message" in a.body for a in bad)
        print(f"\nnats kill: {len(answers)} hits, {len(ok)} answered 2xx and stored once, {len(bad)} refused "
              f"({sum(1 for a in bad if a.status == 503)}x503, median {typical * 1000:.0f} ms, slowest {slowest:.2f}s), stream holds {sum(stored.values())}, "
              f"durable listener got all {len(ok_ids)}")
    finally:
        if load is not None:
            await load.stop()
        await nc.close()
        svc.stop()
        edge.stop()
        server.stop()
