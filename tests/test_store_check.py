"""``band store check``: the stream reconciled with the store, run as users run it (the
CLI against a ``band store`` process on a real nats-server and real chDB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.store import counted, event, plant, publish, start_store, store_check

from band import wire
from band.cli.natsserver import NatsServer
from band.store.server import DURABLE

pytest.importorskip("chdb")

ENV = {"STORE_ACK_WAIT": "120"}  # events another replica holds stay pending for the whole test


def _id(n: int) -> str:
    return str(7_000_000_000_000_000 + n)


async def test_check_finds_a_planted_loss_and_duplicate_by_id_and_keeps_pending_apart(
        tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url, **ENV)
    try:
        events = [event(n) for n in range(1, 21)]
        events[9]["data"]["page"]["title"] = "t" * 200_000  # kept in bad_rows: accounted for, not missing
        await publish(store_client, events)
        await counted(19, proc)
        await counted(1, proc, "SELECT count() AS n FROM stats.bad_rows")
        code, out = await store_check(own_nats.url)
        assert code == 0, out
        assert "20 events checked" in out and "missing 0, duplicated 0, pending 0" in out, out
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]

    plant(tmp_path / "data", f"DELETE FROM stats.events WHERE id = {_id(3)}",
          f"INSERT INTO stats.events SELECT * FROM stats.events WHERE id = {_id(5)}")
    await publish(store_client, [event(n) for n in range(21, 25)])
    # another replica of the store has these four in hand, not yet written: pending, never missing
    psub = await store_client.jetstream().pull_subscribe_bind(DURABLE, stream=wire.STREAM)
    held = await psub.fetch(4, timeout=5)
    assert sorted(m.headers[wire.MSG_ID_HEADER] for m in held) == [_id(n) for n in range(21, 25)]

    proc = start_store(tmp_path, own_nats.url, name="store2", **ENV)
    try:
        await counted(19, proc)  # answering: 19 - the one deleted + the one doubled
        code, out = await store_check(own_nats.url, "--ids")
        assert code == 1, out
        assert "24 events checked" in out and "missing 1, duplicated 1, pending 4" in out, out
        assert f"missing id {_id(3)} (stream sequence 3)" in out, out
        assert f"duplicated id {_id(5)} (2 rows, stream sequences 5, 5)" in out, out
        for n in range(21, 25):
            assert f"pending id {_id(n)} (stream sequence {n})" in out, out
        code, out = await store_check(own_nats.url, "--since", "2000-01-01")
        assert code == 1 and "missing 1, duplicated 1, pending 4" in out, out
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
    info = await store_client.jetstream().consumer_info(wire.STREAM, DURABLE)
    assert info.num_ack_pending == 4, "the check read the stream without touching the store's consumer"


async def test_check_says_what_to_do_without_a_store(own_nats: NatsServer) -> None:
    code, out = await store_check(own_nats.url, timeout=60)
    assert code == 2 and "band store check:" in out, out
