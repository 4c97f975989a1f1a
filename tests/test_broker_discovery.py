"""The live registry: services appear and disappear; custom paths; enrich deadline."""

from __future__ import annotations

import json
from typing import Any

from support.fakes import FakeService, enrichers_seen, enriches, returns, routed, running_edge, typed, unique
from support.poll import wait_for

from band import wire
from broker.discovery import Instance, build_snapshot


def _info(service: str, endpoints: list[tuple[str, dict[str, str]]]) -> Instance:
    return Instance(service, "i1", [{"name": "e", "subject": s, "metadata": md} for s, md in endpoints], 1)


def test_snapshot_rules() -> None:
    handler = wire.endpoint_metadata(wire.ROLE_HANDLER, key="in.gen.shop.buy", timeout=300, path="/buy/:sku")
    wildcard = wire.endpoint_metadata(wire.ROLE_HANDLER, key="in.gen.go.*", timeout=100, path="")
    specific = wire.endpoint_metadata(wire.ROLE_HANDLER, key="in.gen.go.home", timeout=150, path="")
    enricher = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=["in.gen.shop"], props={})
    everyone = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=[], props={})
    rpc = wire.endpoint_metadata(wire.ROLE_RPC, method="secret")
    garbage = {"role": "handler", "key": "in.gen.a.b.c"}
    snap = build_snapshot(
        [
            _info("shop", [("band.handle.in.gen.shop.buy", handler), ("band.rpc.shop.secret", rpc), ("x", garbage)]),
            _info("go", [("a", wildcard), ("b", specific)]),
            _info("geo", [("c", enricher)]),
            _info("ua", [("d", everyone)]),
        ],
        200,
    )
    buy = snap.handler("in.gen.shop.buy")
    assert buy is not None and buy.timeout_s == 0.3 and buy.service == "shop"
    assert snap.handler("in.gen.go.home").timeout_s == 0.15  # type: ignore[union-attr]
    assert snap.handler("in.gen.go.anything").timeout_s == 0.1  # type: ignore[union-attr]
    assert snap.handler("in.gen.shop.secret") is None
    assert snap.enricher_services("in.gen.shop.buy") == {"geo", "ua"}
    assert snap.enricher_services("in.gen.shopping.x") == {"ua"}
    route = snap.path_route(["buy", "42"])
    assert route is not None and route[0].key == "in.gen.shop.buy" and route[1] == {"sku": "42"}
    assert snap.path_route(["buy"]) is None


async def test_new_service_routed_and_stopped_one_forgotten(nc: Any, nats_url: str) -> None:
    svc = unique("late")
    key = f"in.gen.{svc}.x"
    async with running_edge(nats_url) as (client, edge):
        assert (await (await client.get(f"/{svc}/x")).json())["key"] == key  # built-in default
        service = (
            await FakeService(nc, svc).handler("x", returns({"type__": "data", "statusCode": 200, "data": {"from": "svc"}}), path="/custom/:thing").start()
        )
        await routed(edge, key)
        assert await (await client.get(f"/{svc}/x")).json() == {"from": "svc"}
        await service.stop()
        await routed(edge, key, present=False)
        assert (await (await client.get(f"/{svc}/x")).json())["key"] == key


async def test_custom_path_route(nc: Any, nats_url: str) -> None:
    svc = unique("cp")
    seen: list[dict[str, Any]] = []

    async def item(message: dict[str, Any]) -> Any:
        seen.append(message)
        return typed({"type__": "data", "statusCode": 200, "data": {"thing": message["data"]["thing"]}})

    async with FakeService(nc, svc).handler("item", item, path=f"/{svc}-items/:thing"), running_edge(nats_url) as (client, edge):
        await routed(edge, f"in.gen.{svc}.item")
        await wait_for(lambda: bool(edge.discovery.snapshot.paths), what="path routes")
        resp = await client.get(f"/{svc}-items/abc?q=1")
        assert resp.status == 200 and await resp.json() == {"thing": "abc"}
        assert seen[0]["key"] == f"in.gen.{svc}.item" and seen[0]["params"] == {"thing": "abc"} and seen[0]["data"]["q"] == "1"


async def test_late_enricher_skipped_and_counted(nc: Any, nats_url: str) -> None:
    svc, slow = unique("tk"), unique("slow")
    key = f"in.gen.{svc}.page"

    async def silent(message: dict[str, Any]) -> None:
        return None  # never answers: the edge waits its deadline, then goes on

    async with FakeService(nc, slow).enricher(silent, keys=[key]), running_edge(nats_url, enrich_timeouts={key: 50}) as (client, edge):
        await enrichers_seen(edge, key, {slow})
        resp = await client.get(f"/{svc}/page")
        assert resp.status == 200
        metrics = await (await client.get("/metrics")).text()
        assert f'band_edge_enricher_timeouts_total{{service="{slow}"}} 1.0' in metrics


async def test_dead_enricher_forgotten(nc: Any, nats_url: str) -> None:
    svc, geo = unique("tk"), unique("geo")
    key = f"in.gen.{svc}.page"
    async with running_edge(nats_url) as (client, edge):
        service = await FakeService(nc, geo).enricher(enriches({"c": 1}), keys=[key]).start()
        await enrichers_seen(edge, key, {geo})
        sub = await nc.jetstream().subscribe(key, ordered_consumer=True)
        assert (await client.get(f"/{svc}/page")).status == 200
        stored = json.loads((await sub.next_msg(timeout=5)).data)
        assert stored["data"][geo] == {"c": 1}
        await sub.unsubscribe()
        await service.stop()
        await enrichers_seen(edge, key, set())
        assert (await client.get(f"/{svc}/page")).status == 200


def test_enrich_plan_sends_the_union_of_props_or_the_whole_message() -> None:
    geo = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=["in.gen.shop"], props={"ip": "td.ip"})
    ua = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=["in.gen"], props={"agent": "td.ua", "ip": "td.ip"})
    bare = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=["in.gen.track"], props={})
    old = Instance("old", "i1", [{"name": "e", "subject": "x", "metadata": geo}], 1, speaks_props=False)
    snap = build_snapshot([_info("geo", [("a", geo)]), _info("ua", [("b", ua)]), _info("bare", [("c", bare)])], 200)
    assert snap.enrich_plan("in.gen.shop.buy") == ({"geo", "ua"}, ("td.ip", "td.ua"))
    assert snap.enrich_plan("in.gen.track.page") == ({"ua", "bare"}, None)  # an enricher without props: everything
    assert snap.enrich_plan("in.gen.other.x") == ({"ua"}, ("td.ip", "td.ua"))
    assert build_snapshot([old], 200).enrich_plan("in.gen.shop.buy") == ({"old"}, None)  # a revision-1 service
    assert wire.speaks_props({"band": "2"}) and not wire.speaks_props({"band": "1"}) and not wire.speaks_props(None)
