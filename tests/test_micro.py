"""ADR-32 discovery: the one collector every reader of $SRV.* uses (the edge, `band ls`)."""

from __future__ import annotations

from typing import Any

from band import App, ConfigError, wire
from band._runtime.micro import collect
from band.testing import serve
from broker import config as edge_config
from broker.discovery import Discovery


async def test_collect_gathers_every_instance_and_drops_garbage(nats_url: str, nc: Any) -> None:
    async def garbage(msg: Any) -> None:
        await msg.respond(b"not json")

    async def a_list(msg: Any) -> None:
        await msg.respond(b"[1, 2]")

    await nc.subscribe(f"{wire.SRV_PREFIX}.INFO.microcol", cb=garbage)
    await nc.subscribe(f"{wire.SRV_PREFIX}.INFO.microcol", cb=a_list)
    async with serve(App("microcol"), nats_url), serve(App("microcol"), nats_url):
        infos = await collect(nc, "INFO", 0.3, "microcol")
        assert sorted(i["type"] for i in infos) == [wire.MICRO_INFO_TYPE] * 2
        assert len({i["id"] for i in infos}) == 2
        discovery = Discovery(nc, window_s=0.3)
        await discovery.poll_once()
        assert {service for service, _ in discovery._instances} >= {"microcol"}


def test_one_config_error_for_services_and_the_edge() -> None:
    assert edge_config.ConfigError is ConfigError
