"""Retention: a table's ``_options.ttl`` as ClickHouse TTL (made at create, changed or
removed at start), on chDB and on a server's code path; bad values are ConfigErrors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.store import counted, event, publish, start_store

from band import store
from band.errors import ConfigError
from band.store.config import StoreConfig, load
from band.store.schema import build_tables

DAY_S = 24 * 3600
URL = os.environ.get("CLICKHOUSE_URL", "")


def tables(**options: Any) -> dict[str, Any]:
    """A small events table and the bad_rows the store needs, ``options`` on events."""
    return {
        "bad_rows": {"_options": {"order_by": "id"}, "id": "UInt64", "date": "Date", "dateTime": "DateTime('UTC')"},
        "events": {"_options": {"order_by": "id", **options}, "id": "UInt64", "date": "Date", "dateTime": "DateTime('UTC')"},
    }


def config(**options: Any) -> StoreConfig:
    return StoreConfig.from_mapping({"tables": tables(**options), "destinations": {"other": "events"}})


# --- config --------------------------------------------------------------------------------


def test_ttl_is_read_inherited_and_cleared() -> None:
    built = build_tables({
        "base": {"_options": {"abstract": True, "ttl": "25 months"}, "id": "UInt64", "dateTime": "DateTime('UTC')"},
        "events": {"_options": {"extend": "base"}},
        "short": {"_options": {"extend": "base", "ttl": "30 days"}},
        "kept": {"_options": {"extend": "base", "ttl": "none"}},
        "own": {"_options": {"ttl": "1 year", "ttl_column": "seen"}, "seen": "Date", "dateTime": "DateTime"},
    })
    assert built["events"].ttl_expression() == "dateTime + toIntervalMonth(25)"
    assert built["short"].ttl_expression() == "dateTime + toIntervalDay(30)"
    assert built["kept"].ttl is None and built["kept"].ttl_expression() == ""
    assert built["own"].ttl_expression() == "seen + toIntervalYear(1)"
    assert "\nTTL dateTime + toIntervalMonth(25)" in built["events"].create_sql("stats")
    assert "TTL" not in built["kept"].create_sql("stats")
    assert built["kept"].ttl_sql("stats") == "ALTER TABLE `stats`.`kept` REMOVE TTL"
    assert built["short"].ttl_sql("stats") == "ALTER TABLE `stats`.`short` MODIFY TTL dateTime + toIntervalDay(30)"


def test_the_stock_defaults_keep_events_and_expire_what_waits_for_repair() -> None:
    stock = load(overlay=None)
    assert {name: t.ttl_expression() for name, t in stock.tables.items() if t.ttl} == {
        "bad_rows": "kept_at + toIntervalDay(30)", "failed_events": "kept_at + toIntervalDay(30)"}  # from when kept, not the event's time
    assert stock.tables["events"].ttl is None


@pytest.mark.parametrize(("options", "problem"), [
    ({"ttl": "13"}, r"table 'events': _options.ttl is '13'; use a whole number and a unit"),
    ({"ttl": "2 fortnights"}, r"table 'events': _options.ttl is '2 fortnights'"),
    ({"ttl": "0 days"}, r"table 'events': _options.ttl is '0 days'"),
    ({"ttl": "-3 days"}, r"table 'events': _options.ttl is '-3 days'"),
    ({"ttl": "1 month", "ttl_column": "seen"}, r"table 'events': _options.ttl_column is 'seen', which is not a column"),
    ({"ttl": "1 month", "ttl_column": "id"}, r"table 'events': _options.ttl_column 'id' is UInt64; a TTL counts from a Date"),
    ({"retention": "1 month"}, r"table 'events': unknown _options \['retention'\]"),
])
def test_a_bad_retention_is_a_config_error_naming_the_table_and_setting(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        config(**options)


def test_a_ttl_needs_a_time_column() -> None:
    with pytest.raises(ConfigError, match=r"table 'plain': _options.ttl needs a time column .* _options.ttl_column"):
        build_tables({"plain": {"_options": {"ttl": "30 days"}, "id": "UInt64"}})


# --- ClickHouse: chDB, and the server's code path (clickhouse-connect, on chDB or a server) ---

SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from band.store.backend import ChdbBackend, ServerBackend
    from band.store.config import StoreConfig
    from band.store.migrate import ensure
    kind, where, db, spec = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    backend = ChdbBackend(Path(where)) if kind == "chdb" else ServerBackend(where)
    now = int(time.time())

    def step(ttl):
        options = {"order_by": "id", **({"ttl": ttl} if ttl else {})}
        tables = {name: {**body, "_options": {**body["_options"], **options}} if name == "events" else body
                  for name, body in spec.items()}
        changes = ensure(backend, StoreConfig.from_mapping({"database": db, "tables": tables, "destinations": {"other": "events"}}))
        query = backend.select("SELECT create_table_query AS q FROM system.tables WHERE database = {db:String} AND name = 'events'",
                               {"db": db})["rows"][0]["q"]
        return {"ttl": changes.ttl, "created": changes.created, "query": query}

    def ids():
        return sorted(int(r["id"]) for r in backend.select(f"SELECT id FROM `{db}`.events")["rows"])

    out = {"first": step(None)}
    rows = [{"id": 1, "date": (now - 100 * 86400) // 86400, "dateTime": now - 100 * 86400},
            {"id": 2, "date": (now - 86400) // 86400, "dateTime": now - 86400},
            {"id": 3, "date": now // 86400, "dateTime": now}]
    backend.insert(db, "events", "\\n".join(map(json.dumps, rows)).encode())
    out["inserted"] = ids()
    out["set"] = step("30 days")
    backend.command(f"OPTIMIZE TABLE `{db}`.events FINAL")
    out["optimized"] = ids()
    out["again"] = step("30 days")
    out["shorter"] = step("12 hours")
    backend.command(f"ALTER TABLE `{db}`.events MATERIALIZE TTL")
    deadline = time.monotonic() + 60
    while ids() != [3] and time.monotonic() < deadline:
        time.sleep(0.05)
    out["materialized"] = ids()
    out["removed"] = step(None)
    out["removed_again"] = step(None)
    print(json.dumps(out))
""")


def backends(tmp_path: Path) -> list[tuple[str, str, str]]:
    found = [("chdb", str(tmp_path / "chdb"), "stats"), ("server", "chdb://" + str(tmp_path / "viaconnect"), "stats")]
    if URL:
        found.append(("server", URL, f"band_test_{uuid.uuid4().hex[:8]}"))
    return found


@pytest.mark.slow
def test_ttl_is_made_changed_removed_and_deletes_old_rows_when_merged(tmp_path: Path) -> None:
    """A TTL set on a table with rows: the row older than it is gone after ``OPTIMIZE TABLE ...
    FINAL``, newer ones stay; a shorter TTL is ``MODIFY TTL`` (``MATERIALIZE TTL`` applies it to
    stored rows at once); none is ``REMOVE TTL``; an unchanged one is left alone. (ClickHouse may
    drop expired rows sooner, in background merges: only the state after the forced one is sure.)"""
    pytest.importorskip("chdb")
    for kind, where, db in backends(tmp_path):
        try:
            out = subprocess.run([sys.executable, "-c", SCRIPT, kind, where, db, json.dumps(tables())],
                                 capture_output=True, text=True, timeout=180, cwd=tmp_path)
        finally:
            if where == URL:
                from band.store.backend import ServerBackend

                ServerBackend(URL).command(f"DROP DATABASE IF EXISTS `{db}`")
        assert out.returncode == 0, (kind, out.stderr[-3000:])
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert "events" in got["first"]["created"] and " TTL " not in got["first"]["query"], got["first"]
        assert got["inserted"] == [1, 2, 3]
        assert got["set"]["ttl"] == ["events: was none, now dateTime + toIntervalDay(30)"]
        assert "TTL dateTime + toIntervalDay(30)" in got["set"]["query"], got["set"]
        assert got["optimized"] == [2, 3], "the 100-day-old row is gone after the merge, the newer ones stay"
        assert got["again"]["ttl"] == [] and "toIntervalDay(30)" in got["again"]["query"], "unchanged: no ALTER"
        assert got["shorter"]["ttl"] == ["events: was dateTime + toIntervalDay(30), now dateTime + toIntervalHour(12)"]
        assert "TTL dateTime + toIntervalHour(12)" in got["shorter"]["query"]
        assert got["materialized"] == [3]
        assert got["removed"]["ttl"] == ["events: was dateTime + toIntervalHour(12), now none"]
        assert " TTL " not in got["removed"]["query"] and got["removed_again"]["ttl"] == []


# --- the store: restarted with another setting, the table's TTL follows ---------------------


async def ttl_of(table: str) -> str:
    rows = await store.query("SELECT create_table_query AS q FROM system.tables WHERE database = 'stats' AND name = {t:String}", t=table)
    query = str(rows[0]["q"])
    return query[query.index(" TTL ") + 5:].split(" SETTINGS ")[0] if " TTL " in query else ""


@pytest.mark.slow
async def test_restarting_the_store_with_another_ttl_changes_the_table(tmp_path: Path, own_nats: Any, store_client: Any) -> None:
    (tmp_path / "store.yml").write_text("tables:\n  events:\n    _options: {ttl: 25 months}\n")
    proc = start_store(tmp_path, own_nats.url)
    try:
        await publish(store_client, [{**event(1), "time": int(time.time() * 1000)}])  # event(1)'s 2023 is past 25 months
        await counted(1, proc)
        assert await ttl_of("events") == "dateTime + toIntervalMonth(25)"
        assert await ttl_of("activity") == "dateTime + toIntervalMonth(25)", "activity extends events"
        assert await ttl_of("failed_events") == "kept_at + toIntervalDay(30)"
        assert await ttl_of("webhooks") == ""
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
    (tmp_path / "store.yml").write_text("tables:\n  events:\n    _options: {ttl: 90 days}\n  failed_events:\n    _options: {ttl: none}\n")
    proc = start_store(tmp_path, own_nats.url)
    try:
        await counted(1, proc)
        assert await ttl_of("events") == "dateTime + toIntervalDay(90)"
        assert await ttl_of("failed_events") == ""
        assert "store: retention (TTL) changed" in proc.text()
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
    (tmp_path / "store.yml").write_text("tables:\n  events:\n    _options: {ttl: 3 weeks ago}\n")
    proc = start_store(tmp_path, own_nats.url)
    assert proc.popen.wait(60) != 0
    assert "table 'events': _options.ttl is '3 weeks ago'" in proc.text()
