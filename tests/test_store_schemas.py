"""Schemas end to end through a real edge into the real store: ``warn`` stores the event
with its errors in ``schema_errors``; ``enforce`` keeps it whole in ``failed_events`` (a
browser still gets its pixel, a native caller a 400 listing every error);
``band store replay-failed`` stores, exactly once, those that pass a fixed schema (and a
``band store replay`` of the stream after it writes none of them again); ``band store
check`` finds each event in exactly one table all along."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.fakes import running_edge
from support.store import counted, start_store, store_check

from band import store
from band.cli.natsserver import NatsServer
from band.panel import queries

pytest.importorskip("chdb")

PURCHASE_V1 = """\
mode: enforce
type: object
properties:
  data:
    type: object
    required: [revenue, currency]
    properties:
      revenue: {type: number}
      currency: {type: string, pattern: "^[A-Z]{3}$"}
"""
# the fix: trackers send revenue as text from a query string, and currency in any case
PURCHASE_V2 = """\
mode: enforce
type: object
properties:
  data:
    type: object
    required: [revenue, currency]
    properties:
      revenue: {type: [number, string], pattern: "^[0-9.]+$"}
      currency: {type: string, pattern: "^[A-Za-z]{3}$"}
"""
SIGNUP = """\
mode: warn
properties:
  data: {required: [email], properties: {email: {type: string}}}
"""
EVENTS = "SELECT count() AS n FROM stats.events"
FAILED = "SELECT count() AS n FROM stats.failed_events"


async def band_store(nats_url: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "store", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NATS_URL": nats_url})
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_warn_enforce_native_400_and_replay_after_a_fix(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "in.gen.track.purchase.yml").write_text(PURCHASE_V1)
    (folder / "in.gen.track.signup.yml").write_text(SIGNUP)
    proc = start_store(tmp_path, own_nats.url)
    try:
        async with running_edge(own_nats.url, stream_storage="file", schemas_dir=str(folder)) as (client, _):
            good = await client.post("/track/purchase", json={"revenue": 12.5, "currency": "EUR"})
            assert good.status == 200
            pixel = await client.get("/track/purchase.gif?revenue=12&currency=eur")  # a tracker's query string
            assert (pixel.status, pixel.content_type) == (200, "image/gif")
            native = await client.post("/band/track/purchase.json", json={"revenue": "lots", "currency": "euro"})
            assert native.status == 400
            refusal = await native.json()
            assert [(e["path"], e["rule"]) for e in refusal["data"]["errors"]] == [("data.revenue", "type"), ("data.currency", "pattern")]
            assert "failed_events" in refusal["data"]["message"]
            warned = await client.post("/track/signup", json={"name": "x"})
            assert warned.status == 200
        await counted(2, proc, EVENTS)
        await counted(2, proc, FAILED)
        signup = await store.query("SELECT schema_errors FROM stats.events WHERE name = 'signup'")
        verdict = json.loads(signup[0]["schema_errors"])
        assert (verdict["schema"], verdict["mode"]) == ("in.gen.track.signup", "warn")
        assert [e["path"] for e in verdict["errors"]] == ["data"]  # required: reported at the object
        assert "email" in verdict["errors"][0]["message"]
        kept = await store.query("SELECT key, schema, version, errors.path AS paths, errors.rule AS rules, message, stream_seq "
                                 "FROM stats.failed_events ORDER BY stream_seq")
        assert [(r["key"], r["schema"], int(r["version"])) for r in kept] == [("in.gen.track.purchase", "in.gen.track.purchase", 1)] * 2
        assert [r["paths"] for r in kept] == [["data.revenue", "data.currency"]] * 2
        assert json.loads(kept[0]["message"])["data"] == {"revenue": "12", "currency": "eur"}
        assert all(int(r["stream_seq"]) > 0 for r in kept)
        code, out = await store_check(own_nats.url)
        assert code == 0 and "missing 0, duplicated 0" in out, out
        saved = dict(queries.SAVED)["Failed events by key and error, 7 days"]  # the panel's
        by_error = await store.query(saved)
        assert sorted((r["path"], r["rule"], int(r["events"])) for r in by_error) == [("data.currency", "pattern", 2), ("data.revenue", "type", 2)]

        (folder / "in.gen.track.purchase@2.yml").write_text(PURCHASE_V2)  # the schema fixed: the pixel's event passes now
        code, out = await band_store(own_nats.url, "replay-failed", "--key", "in.gen.track")
        assert code == 1, out  # one still fails
        assert "2 failed events checked" in out and "1 stored" in out and "1 still failing" in out, out
        assert "data.revenue: pattern" in out, out
        await counted(3, proc, EVENTS)
        await counted(1, proc, FAILED)
        moved = await store.query("SELECT page_url, extra.key AS keys, extra.value AS vals, stream_seq FROM stats.events "
                                  "WHERE name = 'purchase' ORDER BY stream_seq")
        assert len(moved) == 2 and dict(zip(moved[1]["keys"], moved[1]["vals"], strict=True)) == {"revenue": "12", "currency": "eur"}
        code, out = await band_store(own_nats.url, "replay-failed")  # again: nothing new
        assert code == 1 and "1 failed events checked" in out and "0 stored" in out, out
        await counted(3, proc, EVENTS)
        code, out = await band_store(own_nats.url, "replay")  # the whole stream again: each event is found where it is
        assert code == 0, out
        assert int((await store.query(EVENTS))[0]["n"]) == 3 and int((await store.query(FAILED))[0]["n"]) == 1
        code, out = await store_check(own_nats.url)
        assert code == 0 and "4 events checked" in out and "missing 0, duplicated 0" in out, out
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


async def test_an_invalid_schema_stops_the_store_at_start_naming_the_file(tmp_path: Path, own_nats: NatsServer) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "in.gen.track.purchase.yml").write_text("type: 12\n")
    proc = start_store(tmp_path, own_nats.url)
    try:
        code = await asyncio.to_thread(proc.popen.wait, 60)
    finally:
        if proc.popen.poll() is None:
            proc.stop()
    assert code != 0
    assert "in.gen.track.purchase.yml" in proc.text() and "not a valid JSON Schema" in proc.text()
