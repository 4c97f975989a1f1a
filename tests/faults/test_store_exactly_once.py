"""Exactly once under faults: every hit the edge answered 2xx is in ClickHouse once.

Real processes all the way: a nats-server this test owns (file-backed JetStream in
tmp_path), the edge (``python -m broker``), the store (``band store``, chDB in its own
process). Hits go to the edge over HTTP continuously while the fault strikes; then the
store is left to catch up until its consumer has nothing pending or unacked (nothing
more can be redelivered), and ``SELECT count(), uniqExact(id)`` over the ids answered
2xx must be exactly their number, with no id twice in the whole table, and
``band store check`` must find every stream sequence stored once (0 missing, 0
duplicated, 0 pending).

The faults: nats-server SIGKILLed and restarted on the same port and data directory
(its consumer's ack state rolls back, and stored events come again as first
deliveries); chDB's process exiting right after an insert committed, before it answers
(``BAND_STORE_TEST_EXIT_AFTER_INSERT``, a hook of band/store/isolated.py); the store
SIGKILLed while chDB's process holds its insert, which commits once the store is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from support.poll import wait_for
from support.processes import Load, Proc, edge_healthy, start_edge, stream_ids
from support.store import gone, spawned, start_store, store_check

from band import App, RPCError, current_app, store, wire
from band._core.app import reset_current, set_current
from band.cli.natsserver import NatsServer
from band.store.isolated import EXIT_AFTER_INSERT
from band.store.server import DURABLE

pytest.importorskip("chdb")

# small batches, fast redelivery: faults land mid-batch and their consequences show within the test
STORE_ENV = {"STORE_BATCH_ROWS": "200", "STORE_BATCH_SECONDS": "0.2", "STORE_ACK_WAIT": "3", "STORE_BUILD_PROCESSES": "0"}
WORKERS = 8  # concurrent HTTP clients: a few hundred hits/s on a busy machine
STEP = 300  # 2xx hits between faults


class Rig:
    """nats-server, edge, store and the HTTP load, as one test drives them."""

    def __init__(self, tmp_path: Path, **store_env: str) -> None:
        self.tmp_path = tmp_path
        self.nats = NatsServer(store_dir=tmp_path / "js").start()  # the port is kept for a restart
        self.edge, port = start_edge(self.nats.url, tmp_path)
        self.base = f"http://127.0.0.1:{port}"
        self.store_env = {**STORE_ENV, **store_env}
        self.stores: list[Proc] = []
        self.store = self.start_store()
        self.load: Load | None = None

    def start_store(self) -> Proc:
        proc = start_store(self.tmp_path, self.nats.url, name=f"store{len(self.stores) + 1}", **self.store_env)
        self.stores.append(proc)
        return proc

    def procs(self) -> list[Proc]:
        return [self.edge, self.store]

    def ok(self) -> int:
        assert self.load is not None
        return self.load.count(ok=True)

    async def more_hits(self, n: int = STEP, store_up: bool = True) -> None:
        """Wait for ``n`` more hits answered 2xx."""
        target = self.ok() + n
        await wait_for(lambda: self.ok() >= target, 60, f"{n} more hits answered 2xx",
                       procs=self.procs() if store_up else [self.edge])

    def refused(self) -> int:
        assert self.load is not None
        return self.load.count(ok=False)

    async def settled(self, nc: Any) -> None:
        """Every answered hit stored, and nothing pending or unacked: no redelivery can follow."""
        assert self.load is not None
        await self.load.stop()
        ids = self.ok_ids()
        js = nc.jetstream()

        async def caught_up() -> bool:
            if await _number("SELECT uniqExact(id) AS n FROM stats.events WHERE id IN {ids:Array(UInt64)}", ids=ids) != len(ids):
                return False
            info = await js.consumer_info(wire.STREAM, DURABLE)
            return int(info.num_pending or 0) + int(info.num_ack_pending or 0) == 0

        await wait_for(caught_up, 90, f"the {len(ids)} answered hits stored and acked", step=0.5, procs=self.procs())

    def ok_ids(self) -> list[int]:
        assert self.load is not None
        return [int(a.json()["id"]) for a in self.load.answers if 200 <= a.status < 300]

    async def check(self, nc: Any) -> str:
        """The exactly-once assertions; a one-line summary for the log."""
        ids = self.ok_ids()
        assert len(set(ids)) == len(ids), "the edge answered the same id twice"
        total, unique = await _numbers("SELECT count() AS n, uniqExact(id) AS u FROM stats.events")
        answered, answered_unique = await _numbers(
            "SELECT count() AS n, uniqExact(id) AS u FROM stats.events WHERE id IN {ids:Array(UInt64)}", ids=ids)
        in_stream = await stream_ids(nc.jetstream(), "in.>")
        assert (answered, answered_unique) == (len(ids), len(ids)), (
            f"{len(ids)} hits answered 2xx, stored {answered} times as {answered_unique} ids "
            f"({answered - answered_unique} doubles, {len(ids) - answered_unique} missing)")
        assert total == unique, f"{total - unique} events stored twice (of {unique})"
        assert unique == len(in_stream), f"the stream holds {len(in_stream)} events, the store {unique}"
        status = await current_app().rpc.request("store", "status", timeout__=10)
        code, out = await store_check(self.nats.url, "--ids")
        assert code == 0 and f"{len(in_stream):,} events checked" in out and "missing 0, duplicated 0, pending 0" in out, out
        return (f"{len(ids)} answered 2xx, stored once each ({total} rows, {len(in_stream)} events in the stream; "
                f"the last store skipped {status['skipped']} already stored; band store check: {out.strip()})")

    async def close(self) -> None:
        if self.load is not None:
            await self.load.stop()
        for proc in self.stores:
            proc.kill()
        self.edge.kill()
        self.nats.stop()


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, **store_env: str) -> AsyncIterator[tuple[Rig, Any, aiohttp.ClientSession]]:
    """The rig with a NATS client that is the current app (for ``store.query``) and the load running."""
    setup = Rig(tmp_path, **store_env)
    nc = await nats.connect(setup.nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    app = App("tester")
    app.nc = nc
    token = set_current(app)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for(lambda: edge_healthy(session, setup.base), 30, "edge healthy", procs=[setup.edge])
            await wait_for(lambda: _over("SELECT 1 AS n", 0), 60, "the store answering", step=0.2, procs=[setup.store])
            setup.load = Load(session, setup.base, ["/track/page?utm_source=load"], workers=WORKERS, limit=10**6).start()
            yield setup, nc, session
    finally:
        reset_current(token)
        await setup.close()
        await nc.close()


async def _numbers(sql: str, **params: Any) -> tuple[int, ...]:
    rows = await store.query(sql, timeout__=10, **params)
    return tuple(int(v) for v in rows[0].values())


async def _number(sql: str, **params: Any) -> int:
    try:
        return (await _numbers(sql, **params))[0]
    except RPCError:  # the store or NATS is not back yet
        return -1


async def _over(sql: str, n: int) -> bool:
    return await _number(sql) > n


@pytest.mark.slow
async def test_nats_server_sigkilled_three_times_under_load(tmp_path: Path) -> None:
    async with rig(tmp_path) as (setup, nc, _):
        for _ in range(3):
            await setup.more_hits()
            await wait_for(lambda: _over("SELECT count() AS n FROM stats.events", 0), 30, "rows written",
                           step=0.2, procs=setup.procs())
            setup.nats.kill()
            refused = setup.refused()
            await wait_for(lambda refused=refused: setup.refused() >= refused + 20, 20, "hits refused while NATS is down",
                           procs=setup.procs())
            setup.nats.start()  # same port, same data directory
        await setup.more_hits()
        await setup.settled(nc)
        print("\nnats-server killed 3 times:", await setup.check(nc))


@pytest.mark.slow
async def test_chdb_process_dying_between_commit_and_reply(tmp_path: Path) -> None:
    async with rig(tmp_path, **{EXIT_AFTER_INSERT: "2"}) as (setup, nc, _):  # each chDB process: 2 inserts, then gone
        def deaths() -> int:
            return setup.store.text().count("the store's chDB process exited")

        await setup.more_hits()
        await wait_for(lambda: deaths() >= 3, 60, "chDB's process to die 3 times", step=0.2, procs=setup.procs())
        await setup.more_hits()
        await setup.settled(nc)
        print(f"\nchDB's process exited after a commit {deaths()} times:", await setup.check(nc))


@pytest.mark.slow
async def test_store_sigkilled_mid_batch_with_its_insert_committing(tmp_path: Path) -> None:
    """The store SIGKILLed while chDB's process holds its insert, which commits after the
    store is gone: stored and never acked. Batches of 20 rows, so a whole insert (at most
    the consumer's 80 unacked events, about 60 KB) waits in the pipe to chDB's process."""
    async with rig(tmp_path, STORE_BATCH_ROWS="20") as (setup, nc, _):
        js = nc.jetstream()

        async def unacked() -> int:
            return int((await js.consumer_info(wire.STREAM, DURABLE)).num_ack_pending or 0)

        for _ in range(2):
            await setup.more_hits()
            chdb = [pid for pid, what in spawned(setup.store.pid).items() if what == "chdb"]
            os.kill(chdb[0], signal.SIGSTOP)  # an insert from now on waits for it
            try:  # nothing acked until the consumer's 80 are out: the writer waits on an insert
                await wait_for(lambda: _equals(unacked(), 80), 30, "the store to wait on its insert", procs=setup.procs())
                setup.store.kill()
            finally:
                os.kill(chdb[0], signal.SIGCONT)  # it commits the insert it holds, finds the store gone, exits
            await wait_for(lambda chdb=chdb: gone(chdb), 20, "chDB's process to finish its insert and exit")
            await setup.more_hits(100, store_up=False)  # the edge keeps answering: the events wait in JetStream
            setup.store = setup.start_store()
            await wait_for(lambda: _skipped(1), 30, "the new store to find the committed events stored",
                           step=0.2, procs=setup.procs())
        await setup.more_hits()
        await setup.settled(nc)
        print("\nthe store SIGKILLed twice with an insert committing:", await setup.check(nc))


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _skipped(at_least: int) -> bool:
    try:
        status = await current_app().rpc.request("store", "status", timeout__=5)
    except RPCError:
        return False
    return int(status["skipped"]) >= at_least
