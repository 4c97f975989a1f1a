"""The writer's suspect rule (band/store/writer.py): what may already be stored is looked
up by id before it is written, whatever JetStream's delivery count says. A real
nats-server, real chDB in its own process, the store's own classes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from support.poll import wait_for
from support.store import event, publish

from band import wire
from band._core.log import Logger
from band._runtime.stream import ensure_stream
from band.cli.natsserver import NatsServer
from band.store.config import StoreConfig, load
from band.store.isolated import EXIT_AFTER_INSERT, IsolatedChdb
from band.store.migrate import ensure
from band.store.pull import Puller
from band.store.rows import RowBuilder
from band.store.writer import Engine, Health, Writer

pytest.importorskip("chdb")

DURABLE = "writer_test"


@pytest.fixture
async def client(own_nats: NatsServer) -> AsyncIterator[Any]:
    nc = await nats.connect(own_nats.url)
    yield nc
    await nc.close()


def config(tmp_path: Path) -> StoreConfig:
    return StoreConfig.from_mapping({**load().raw, "data_dir": str(tmp_path / "data")}, tmp_path)


async def consumer(nc: Any, durable: str = DURABLE) -> Puller:
    """The durable consumer made afresh: every message of the stream is a first delivery again."""
    js = nc.jetstream()
    await ensure_stream(js)
    try:
        await js.delete_consumer(wire.STREAM, durable)
    except nats.js.errors.NotFoundError:
        pass
    await js.add_consumer(wire.STREAM, ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                                      filter_subject=wire.EVENTS_SUBJECTS))
    return await Puller(nc, wire.STREAM, durable, pending_limit=1000).start()


async def write_all(engine: Engine, cfg: StoreConfig, psub: Puller, events: int, check_all: bool = False) -> Writer:
    """A writer over ``psub`` until it has acked ``events`` messages (or the test fails)."""
    writer = Writer(engine, RowBuilder(cfg), psub, batch_rows=100, batch_seconds=0.1, ack_wait_s=30,
                    health=Health(), logger=Logger(component="test"), check_all=check_all)
    task = asyncio.create_task(writer.run())
    try:
        await wait_for(lambda: writer.processed >= events or task.done(), 30, f"{events} messages acked")
    finally:
        writer.stop.set()
        await asyncio.wait_for(task, 30)
    return writer


async def stored(engine: Engine) -> tuple[int, int]:
    rows = (await engine.call(engine.backend.select, "SELECT count() AS n, uniqExact(id) AS u FROM stats.events"))["rows"]
    return int(rows[0]["n"]), int(rows[0]["u"])


async def test_a_first_delivery_at_or_below_the_mark_is_looked_up(tmp_path: Path, client: Any) -> None:
    """As after a nats-server crash: stored, never acked, delivered again with num_delivered 1."""
    cfg = config(tmp_path)
    backend = IsolatedChdb(cfg.data_dir)
    try:
        await asyncio.to_thread(ensure, backend, cfg)
        await publish(client, [event(n) for n in range(3)])
        builder, psub = RowBuilder(cfg), await consumer(client)
        msgs = await psub.fetch(3, 5)
        first = []
        for msg in msgs[:2]:
            table, _, _, row = builder.line(wire.decode(msg.data), seq=msg.metadata.sequence.stream)
            first.append(builder.encode(table, row))
        await asyncio.to_thread(backend.insert, cfg.database, "events", b"\n".join(first), *builder.form("events"))
        await psub.unsubscribe()  # a store that died there: two rows in, nothing acked

        again = await consumer(client)  # consumer state gone: all three come as first deliveries
        writer = await write_all(Engine.of(backend, cfg), cfg, again, 3)  # a new process: the mark is read from the store
        assert await stored(writer.engine) == (3, 3)
        assert writer.health.skipped == 2 and writer.engine.mark.seq == 3
    finally:
        backend.close()


async def test_a_batch_whose_insert_outcome_is_unknown_is_retried_all_suspect(tmp_path: Path, client: Any,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """chDB's process commits the insert, then dies before it answers: the retry finds every row."""
    monkeypatch.setenv(EXIT_AFTER_INSERT, "1")  # every chDB process exits after its first insert
    cfg = config(tmp_path)
    backend = IsolatedChdb(cfg.data_dir)
    try:
        await asyncio.to_thread(ensure, backend, cfg)
        await publish(client, [event(n) for n in range(20)])
        writer = await write_all(Engine.of(backend, cfg), cfg, await consumer(client), 20)
        assert writer.processed == 20 and writer.health.retries >= 1, "the first insert's answer was lost"
        assert await stored(writer.engine) == (20, 20)
        assert writer.health.skipped == 20
    finally:
        backend.close()


async def test_what_a_replay_stored_ahead_of_the_live_writer_is_not_written_again(tmp_path: Path, client: Any) -> None:
    """A replay reads the whole stream, past a live writer that lags behind; when the replay
    is over, the live writer reaches those events as first deliveries."""
    cfg = config(tmp_path)
    backend = IsolatedChdb(cfg.data_dir)
    try:
        await asyncio.to_thread(ensure, backend, cfg)
        await publish(client, [event(n) for n in range(10)])
        engine = Engine.of(backend, cfg)  # one store process: the replay and the live writer share it
        await write_all(engine, cfg, await consumer(client, "replay_test"), 10, check_all=True)
        live = await write_all(engine, cfg, await consumer(client), 10)
        assert await stored(engine) == (10, 10)
        assert live.health.skipped == 10
    finally:
        backend.close()
