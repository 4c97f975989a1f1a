"""How long and how much the events and dead-letter streams keep: one setting each
(``BAND_STREAM_MAX_AGE`` / ``_BYTES``, ``BAND_DLQ_MAX_AGE`` / ``_BYTES``), read by whoever
makes the stream (store, edge, band provision), applied to an existing one by band provision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import StorageType
from nats.js.errors import NotFoundError
from support.fakes import BROWSER, running_edge
from support.poll import wait_for

from band import wire
from band._runtime.stream import StreamLimits, dlq_retention, ensure_stream, events_retention
from band.cli.provision import provision
from band.errors import ConfigError
from broker.config import from_env

DAY_S = 24 * 3600.0


def test_the_defaults_are_a_week_of_events_and_a_month_of_dead_letters() -> None:
    assert (events_retention({}).max_age_s, events_retention({}).max_bytes) == (7 * DAY_S, -1)
    assert (dlq_retention({}).max_age_s, dlq_retention({}).max_bytes) == (30 * DAY_S, -1)
    kept = events_retention({"BAND_STREAM_MAX_AGE": "36 hours", "BAND_STREAM_MAX_BYTES": "2 GB"})
    assert (kept.max_age_s, kept.max_bytes) == (36 * 3600.0, 2 << 30)
    assert events_retention({"BAND_STREAM_MAX_AGE": "none"}).max_age_s == 0, "no age limit: size only"


@pytest.mark.parametrize(("env", "problem"), [
    ({"BAND_STREAM_MAX_AGE": "7"}, "BAND_STREAM_MAX_AGE is '7'; use a whole number and a unit"),
    ({"BAND_STREAM_MAX_AGE": "a week"}, "BAND_STREAM_MAX_AGE is 'a week'"),
    ({"BAND_STREAM_MAX_BYTES": "10 parsecs"}, "BAND_STREAM_MAX_BYTES is '10 parsecs'; use a whole number of bytes"),
    ({"BAND_DLQ_MAX_AGE": "0 days"}, "BAND_DLQ_MAX_AGE is '0 days'"),
    ({"BAND_DLQ_MAX_BYTES": "-5"}, "BAND_DLQ_MAX_BYTES is '-5'"),
])
def test_a_bad_stream_retention_is_a_config_error_naming_its_variable(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        events_retention(env)
        dlq_retention(env)


def test_the_edge_refuses_a_bad_value_at_start_and_names_the_moved_settings() -> None:
    with pytest.raises(ConfigError, match="BAND_STREAM_MAX_AGE is 'soon'"):
        from_env({"BAND_STREAM_MAX_AGE": "soon"})
    with pytest.raises(ConfigError, match="EDGE_STREAM_MAX_AGE_S is now BAND_STREAM_MAX_AGE"):
        from_env({"EDGE_STREAM_MAX_AGE_S": "3600"})
    with pytest.raises(ConfigError, match="EDGE_STREAM_MAX_BYTES is now BAND_STREAM_MAX_BYTES"):
        from_env({"EDGE_STREAM_MAX_BYTES": "1000"})


def test_the_panel_refuses_a_bad_dead_letter_setting_at_start() -> None:
    from band.panel.config import PanelConfigError
    from band.panel.config import from_env as panel_env

    with pytest.raises(PanelConfigError, match="band panel: BAND_DLQ_MAX_AGE is 'forever'"):
        panel_env({"BAND_DLQ_MAX_AGE": "forever"})
    panel_env({"BAND_DLQ_MAX_AGE": "90 days"})


async def info(url: str, name: str = wire.STREAM) -> Any:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(name)).config
    finally:
        await nc.close()


async def test_the_stream_is_made_with_config_and_band_provision_brings_it_to_a_change(
        own_nats: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BAND_STREAM_MAX_AGE", "2 days")
    monkeypatch.setenv("BAND_STREAM_MAX_BYTES", "64 MB")
    nc = await nats.connect(own_nats.url)
    try:
        js = nc.jetstream()
        assert await ensure_stream(js, StreamLimits(storage="memory", max_msgs=5000)) == ""
        made = await info(own_nats.url)
        assert (made.max_age, made.max_bytes, made.max_msgs) == (2 * DAY_S, 64 << 20, 5000)
        monkeypatch.setenv("BAND_STREAM_MAX_AGE", "3 days")
        differs = await ensure_stream(js)  # the store and the edge only say so
        assert differs == "keeps 2 days, at most 67108864 bytes; config says 3 days, at most 67108864 bytes"
        assert (await info(own_nats.url)).max_age == 2 * DAY_S
    finally:
        await nc.close()
    monkeypatch.setenv("BAND_DLQ_MAX_AGE", "10 days")
    assert await provision([tmp_path], own_nats.url, 10) == 0
    changed = await info(own_nats.url)
    assert (changed.max_age, changed.max_bytes) == (3 * DAY_S, 64 << 20)
    assert (changed.max_msgs, StorageType(changed.storage).value, changed.duplicate_window) == (5000, "memory", 120.0), "the rest kept"
    assert (await info(own_nats.url, wire.DLQ_STREAM)).max_age == 10 * DAY_S
    err = capsys.readouterr().err
    assert f"stream {wire.STREAM}: keeps 2 days" in err and f"stream {wire.DLQ_STREAM}: created, keeping 10 days" in err
    assert await provision([tmp_path], own_nats.url, 10) == 0
    assert "keeps" not in capsys.readouterr().err, "nothing to change the second time"


async def test_the_edge_makes_and_remakes_the_stream_with_config(own_nats: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """At start, and when a hit finds the stream gone (its repair), with ``BAND_STREAM_MAX_AGE``."""
    monkeypatch.setenv("BAND_STREAM_MAX_AGE", "90 minutes")
    nc = await nats.connect(own_nats.url)
    js = nc.jetstream()

    async def made() -> bool:
        try:
            return bool((await js.stream_info(wire.STREAM)).config.max_age == 5400.0)
        except NotFoundError:
            return False

    try:
        async with running_edge(own_nats.url) as (client, _edge):
            await wait_for(made, 10, "the stream made by the edge with BAND_STREAM_MAX_AGE")
            await js.delete_stream(wire.STREAM)
            await client.get("/track/page", headers={"User-Agent": BROWSER})  # finds no stream: 503, and the edge remakes it
            await wait_for(made, 10, "the stream remade by the edge with BAND_STREAM_MAX_AGE")
    finally:
        await nc.close()
