"""band/schemas.py: schema files read, compiled and chosen per key; every error with its path;
an invalid file a ConfigError naming it; ``band schemas`` lists and validates the folder; a
listener or handler that declares a schema gets only events that pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.poll import wait_for

from band import App, ConfigError, schemas, wire
from band.testing import serve

PURCHASE = (Path(__file__).resolve().parents[1] / "examples" / "schemas" / "in.gen.track.purchase.yml").read_text()


def folder(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "schemas"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def purchase(**data: Any) -> dict[str, Any]:
    return {"key": "in.gen.track.purchase", "service": "track", "name": "purchase", "uid": "6462464730849083392",
            "data": data, "id": "6462464730849083393", "time": 1540771658623}


def test_every_error_is_listed_with_its_path_and_rule(tmp_path: Path) -> None:
    found = schemas.load(folder(tmp_path, **{"in.gen.track.purchase.yml": PURCHASE}))
    schema = found.for_key("in.gen.track.purchase")
    assert schema is not None and (schema.mode, schema.version) == ("enforce", 1)
    assert found.check(purchase(revenue=12.5, currency="EUR")) is None
    verdict = found.check(purchase(revenue="12", currency="euro"))
    assert verdict is not None
    assert [(e["path"], e["rule"]) for e in verdict["errors"]] == [("data.revenue", "type"), ("data.currency", "pattern")]
    assert (verdict["schema"], verdict["version"], verdict["mode"]) == ("in.gen.track.purchase", 1, "enforce")
    assert found.check(purchase(revenue=1)) is not None  # currency missing: a required error
    assert found.for_key("in.gen.track.page") is None  # no schema: not checked


def test_a_prefix_schema_covers_its_keys_and_the_highest_version_wins(tmp_path: Path) -> None:
    found = schemas.load(folder(tmp_path, **{
        "in.gen.track.yml": "required: [uid]\n",
        "in.gen.track.purchase@2.yml": PURCHASE,
        "in.gen.track.purchase@3.json": '{"mode": "warn", "type": "object"}',
        "in.gen.shop.json": '{"$id": "https://example.com/shop/v4", "type": "object"}',
    }))
    assert found.for_key("in.gen.track.page") is not None and found.for_key("in.gen.track.page").key == "in.gen.track"  # type: ignore[union-attr]
    assert found.for_key("in.gen.trackx.page") is None  # whole tokens only
    latest = found.for_key("in.gen.track.purchase")
    assert latest is not None and (latest.version, latest.mode) == (3, "warn")
    assert found.by_key["in.gen.shop"].version == 4


@pytest.mark.parametrize(("name", "text", "says"), [
    ("in.gen.track.purchase.yml", "type: 12\n", "not a valid JSON Schema"),
    ("in.gen.track.purchase.yml", "type: [object\n", "cannot read it"),
    ("in.gen.track.purchase.yml", "mode: strict\n", "mode 'strict' is unknown"),
    ("in.gen.track.purchase.yml", "- a list\n", "must be an object"),
    ("track.purchase.yml", "type: object\n", "must be a routing key"),
    ("in.gen.track.purchase@two.yml", "type: object\n", "version 'two'"),
])
def test_an_invalid_schema_file_is_a_config_error_naming_it(tmp_path: Path, name: str, text: str, says: str) -> None:
    folder(tmp_path, **{name: text})
    with pytest.raises(ConfigError, match=says) as caught:
        schemas.load(tmp_path / "schemas")
    assert name in str(caught.value)


def band_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "band", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, **env})


def test_band_schemas_lists_the_folder_and_refuses_an_invalid_file(tmp_path: Path) -> None:
    folder(tmp_path, **{"in.gen.track.purchase@2.yml": PURCHASE, "in.gen.track.yml": "type: object\n"})
    listed = band_cli("schemas", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[1].split()[:3] == ["in.gen.track", "1", "warn"]
    assert lines[2].split()[:3] == ["in.gen.track.purchase", "2", "enforce"]
    assert lines[2].endswith("in.gen.track.purchase@2.yml")
    (tmp_path / "schemas" / "in.gen.track.page.yml").write_text("type: 12\n")
    refused = band_cli("schemas", cwd=tmp_path)
    assert refused.returncode == 2
    assert "in.gen.track.page.yml" in refused.stderr and "not a valid JSON Schema" in refused.stderr


def test_the_edge_refuses_to_start_with_an_invalid_schema_naming_the_file(tmp_path: Path) -> None:
    folder(tmp_path, **{"in.gen.track.purchase.yml": "properties: {data: {type: nothing}}\n"})
    started = band_cli("edge", "--port", "0", "--nats", "nats://127.0.0.1:1", cwd=tmp_path)
    assert started.returncode == 2
    assert "in.gen.track.purchase.yml" in started.stderr and "not a valid JSON Schema" in started.stderr


async def test_a_listener_that_declares_a_schema_gets_only_valid_events(
        tmp_path: Path, nats_url: str, nc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAND_SCHEMAS", str(folder(tmp_path, **{"in.gen.track.purchase.yml": PURCHASE})))
    app = App("checked")
    got: list[Any] = []
    every: list[Any] = []

    @app.expose.listener(keys=["in.gen.track.purchase"], schema="in.gen.track.purchase")
    async def purchases(data: dict[str, Any]) -> None:
        got.append(data["revenue"])

    @app.expose.listener(keys=["in.gen.track.purchase"])
    async def unchecked(data: dict[str, Any]) -> None:
        every.append(data["revenue"])

    async with serve(app, nats_url) as service:
        for revenue, currency in ((1, "EUR"), ("2", "EUR"), (3, "eur"), (4, "USD")):
            await nc.publish("in.gen.track.purchase", wire.encode(purchase(revenue=revenue, currency=currency)))
        await wait_for(lambda: len(every) == 4, what="the unchecked listener got every event")
        await wait_for(lambda: service.dispatch.schema_skipped["purchases"] == 2, what="two invalid events skipped")
        assert got == [1, 4]


async def test_a_handler_that_declares_a_schema_answers_400_with_the_errors(
        tmp_path: Path, nats_url: str, nc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAND_SCHEMAS", str(folder(tmp_path, **{"in.gen.track.purchase.yml": PURCHASE})))
    app = App("track")
    called: list[Any] = []

    @app.expose.handler(schema="in.gen.track.purchase")
    async def purchase_(data: dict[str, Any]) -> dict[str, bool]:
        called.append(data)
        return {"ok": True}

    async with serve(app, nats_url):
        bad = await nc.request(wire.handle_subject("in.gen.track.purchase_"), wire.encode(purchase(revenue="x", currency="eu")), timeout=5)
        code, text = wire.error_from_headers(bad.headers) or (0, "")
        assert code == 400 and "data.revenue" in text and "data.currency" in text
        good = await nc.request(wire.handle_subject("in.gen.track.purchase_"), wire.encode(purchase(revenue=1, currency="EUR")), timeout=5)
        assert wire.error_from_headers(good.headers) is None
    assert len(called) == 1


def test_a_declared_schema_the_folder_lacks_stops_the_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from band._runtime.dispatch import declared_schemas

    monkeypatch.setenv("BAND_SCHEMAS", str(folder(tmp_path)))
    app = App("lacking")

    @app.expose.listener(schema="in.gen.track.purchase")
    async def purchases(**message: Any) -> None:
        pass

    with pytest.raises(ConfigError, match=r"purchases\(\) declares schema 'in.gen.track.purchase'"):
        declared_schemas(app)
    with pytest.raises(ConfigError, match="schema must be a routing key"):
        app.expose.listener(schema=3)  # type: ignore[arg-type]


async def test_a_durable_listener_acks_the_events_its_schema_skips(
        tmp_path: Path, own_nats: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import nats

    from band._runtime.stream import ensure_stream

    monkeypatch.setenv("BAND_SCHEMAS", str(folder(tmp_path, **{"in.gen.track.purchase.yml": PURCHASE})))
    app = App("durablecheck")
    got: list[Any] = []

    @app.expose.listener(keys=["in.gen.track.purchase"], durable=True, schema="in.gen.track.purchase", ack_wait=1.0, max_deliver=3)
    async def purchases(data: dict[str, Any]) -> None:
        got.append(data["revenue"])

    nc = await nats.connect(own_nats.url)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        async with serve(app, own_nats.url) as service:
            for n, (revenue, currency) in enumerate(((1, "EUR"), ("2", "EUR"), (3, "eur"), (4, "USD"))):
                event = {**purchase(revenue=revenue, currency=currency), "id": str(6462464730849083400 + n)}
                await js.publish("in.gen.track.purchase", wire.encode(event), headers={wire.MSG_ID_HEADER: event["id"]})

            async def all_acked() -> bool:
                info = await js.consumer_info(wire.STREAM, wire.durable_name("durablecheck", "purchases"))
                return bool(info.num_pending == 0 and info.num_ack_pending == 0 and info.num_redelivered == 0)

            await wait_for(lambda: len(got) == 2, what="the valid events")
            await wait_for(all_acked, what="every event acked, the skipped ones too, none redelivered")
            # nothing pending to ack and nothing redelivered: the skipped events were acked
            assert got == [1, 4] and service.dispatch.schema_skipped["purchases"] == 2
    finally:
        await nc.close()
