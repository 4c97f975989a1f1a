"""The identity graph's tables and the events_people view, as the store makes them at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.store import counted, event, publish, start_store

from band import store
from band.cli.natsserver import NatsServer
from band.store.config import IDENTITY_TABLES, load

pytest.importorskip("chdb")


def test_the_stock_config_has_the_identity_tables_and_refuses_inserts_into_them() -> None:
    config = load()
    assert config.identity_ready()
    assert "ReplacingMergeTree(stream_seq)" in config.tables["identities"].create_sql("stats")
    assert "events_people" in config.views
    for table in IDENTITY_TABLES:
        assert not config.may_insert(table), table


async def test_events_people_has_every_event_column_and_person_id(tmp_path: Path, own_nats: NatsServer,
                                                                 store_client: Any) -> None:
    (tmp_path / "store.yml").write_text("tables:\n  events:\n    shop_basket: String\n")
    proc = start_store(tmp_path, own_nats.url)
    try:
        await publish(store_client, [event(1)])
        await counted(1, proc)
        described = await store.query("SELECT name, type FROM system.columns WHERE database = 'stats' "
                                      "AND table = 'events_people' ORDER BY position")
        events = await store.query("SELECT name, type FROM system.columns WHERE database = 'stats' "
                                   "AND table = 'events' ORDER BY position")
        assert described == [*events, {"name": "person_id", "type": "UInt64"}]
        assert any(c["name"] == "shop_basket" for c in described)  # an overlay's column is there too
        rows = await store.query("SELECT uid, person_id FROM stats.events_people")
        assert rows == [{"uid": int(event(1)["uid"]), "person_id": int(event(1)["uid"])}]  # never identified: itself
        for table in IDENTITY_TABLES:
            assert await store.query(f"SELECT count() AS n FROM stats.{table}") == [{"n": 0}]
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
