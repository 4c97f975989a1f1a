"""Front's built-in enrichers in the edge: fpid (xxHash64 of ip:ua) and stored (Redis s:<uid>)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import xxhash
from support.fakes import FakeService, enrichers_seen, running_edge, unique
from support.sdk import arrivals

from broker.builtin_enrichers import FPID_SEED, fpid

IP = "109.252.93.158"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.77 Safari/537.36"
# front read the binding's little-endian 8 bytes as a big-endian number: the reversed digest
KNOWN_FPID = "17286173937058627254"
REDIS_URL = "redis://127.0.0.1:6379/0"


def test_fpid_value_and_byte_order() -> None:
    digest = xxhash.xxh64(f"{IP}:{UA}".encode(), seed=FPID_SEED)
    assert digest.hexdigest() == "b6befe139cd3e4ef"  # the canonical (big-endian) xxHash64
    assert fpid(IP, UA) == KNOWN_FPID == str(int.from_bytes(bytes.fromhex("efe4d39c13febeb6"), "big"))
    assert int(KNOWN_FPID) < 2**64  # fits the store's UInt64 td_fpid


async def test_fpid_on_track_by_default_and_configurable(nc: Any, nats_url: str) -> None:
    headers = {"X-Real-IP": IP, "User-Agent": UA}  # the test client's 127.0.0.1 is a trusted proxy
    async with running_edge(nats_url, ip_policy="keep") as (client, _), arrivals(nc, "in.gen.>") as seen:  # Rockstat's value
        await client.get("/t4k/page", headers=headers)
        await client.get("/fpidnot/page", headers=headers)
        track, other = sorted(await seen.take(2), key=lambda e: e["service"] != "track")
    assert track["service"] == "track" and track["data"]["fpid"] == KNOWN_FPID
    assert "fpid" not in other["data"]
    async with running_edge(nats_url, builtin_enrichers={"fpid": "in.gen.fpidshop"}, ip_policy="keep") as (client, _), \
            arrivals(nc, "in.gen.>") as seen:
        await client.get("/fpidshop/buy", headers=headers)
        await client.get("/track/page", headers=headers)
        events = await seen.take(2)
    by_service = {e["service"]: e for e in events}
    assert by_service["fpidshop"]["data"]["fpid"] == KNOWN_FPID and "fpid" not in by_service["track"]["data"]


async def test_fpid_hashes_what_the_ip_policy_keeps(nc: Any, nats_url: str) -> None:
    """Unkeyed, a hash of the whole address would give it back to anyone trying every IPv4
    address: under any policy but ``keep`` the fingerprint is of what the policy keeps."""
    headers = {"X-Real-IP": IP, "User-Agent": UA}
    async with running_edge(nats_url, ip_policies={"3": "drop"}) as (client, _), arrivals(nc, "in.gen.track.>") as seen:
        await client.get("/track/page", headers=headers)  # the default: truncate
        await client.get("/track/page/3", headers=headers)
        cut, dropped = await seen.take(2)
    assert cut["td"]["ip"] == IP.rsplit(".", 1)[0] + ".0" and cut["data"]["fpid"] == fpid(cut["td"]["ip"], UA) != KNOWN_FPID
    assert dropped["td"]["ip"] == "" and "fpid" not in dropped["data"]


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    aioredis = pytest.importorskip("redis.asyncio")
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        pytest.skip("no Redis on 127.0.0.1:6379")
    yield client
    await client.aclose()


async def test_stored_reads_the_visitors_hash(nc: Any, nats_url: str, redis_client: Any) -> None:
    uid = str(7_000_000_000_000_000_000 + uuid.uuid4().int % 10**15)  # a uid only this test uses
    key = f"s:{uid}"
    await redis_client.hset(key, mapping={"segment": json.dumps("vip"), "score": json.dumps(42), "tags": json.dumps(["a", "b"]), "raw": "not json"})
    try:
        async with running_edge(nats_url, redis_url=REDIS_URL) as (client, _), arrivals(nc, "in.gen.track.>") as seen:
            resp = await client.get(f"/track/page?uid={uid}")
            assert resp.status == 200
            other = await client.get("/track/page?uid=1234567890123")  # no hash: no data.stored
            assert other.status == 200
            mine, theirs = sorted(await seen.take(2), key=lambda e: e["uid"] != uid)
        assert mine["data"]["stored"] == {"segment": "vip", "score": 42, "tags": ["a", "b"], "raw": "not json"}
        assert "stored" not in theirs["data"]
        async with running_edge(nats_url) as (client, _), arrivals(nc, "in.gen.track.>") as seen:  # no redis_url: off
            await client.get(f"/track/page?uid={uid}")
            (event,) = await seen.take(1)
        assert "stored" not in event["data"]
    finally:
        await redis_client.delete(key)


@pytest.fixture
def silent_port() -> Any:
    """A port that accepts connections and never answers: a Redis that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


async def test_stored_deadline_and_errors_do_not_hold_the_hit(nc: Any, nats_url: str, silent_port: int) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    for url, counter in (
        (f"redis://127.0.0.1:{silent_port}/0", "band_edge_enricher_timeouts_total"),
        (f"redis://127.0.0.1:{closed_port}/0", "band_edge_enricher_errors_total"),
    ):
        async with running_edge(nats_url, redis_url=url, enrich_timeout_ms=150, ip_policy="keep") as (client, _), \
                arrivals(nc, "in.gen.track.>") as seen:
            resp = await asyncio.wait_for(client.get("/track/page?x=1", headers={"X-Real-IP": IP, "User-Agent": UA}), timeout=10)
            assert resp.status == 200
            (event,) = await seen.take(1)
            assert "stored" not in event["data"] and event["data"]["fpid"] == KNOWN_FPID
            metrics = await (await client.get("/metrics")).text()
            assert f'{counter}{{service="stored"}} 1.0' in metrics, url


async def test_enricher_services_see_fpid(nc: Any, nats_url: str) -> None:
    """fpid is filled before the enrich request: an enricher service can use it."""
    svc = unique("fpidsee")
    key = f"in.gen.{svc}.page"
    seen_by_enricher: list[dict[str, Any]] = []

    async def look(message: dict[str, Any]) -> Any:
        seen_by_enricher.append(message)
        return None, json.dumps({"saw": message["data"].get("fpid")}).encode()

    async with running_edge(nats_url, builtin_enrichers={"fpid": f"in.gen.{svc}"}, ip_policy="keep") as (client, edge), \
            FakeService(nc, unique("looker")).enricher(look, keys=[f"in.gen.{svc}"]) as looker, \
            arrivals(nc, f"in.gen.{svc}.>") as seen:
        await enrichers_seen(edge, key, {looker.name})
        await client.get(f"/{svc}/page", headers={"X-Real-IP": IP, "User-Agent": UA})
        (event,) = await seen.take(1)
    assert seen_by_enricher[0]["data"]["fpid"] == KNOWN_FPID
    assert event["data"][looker.name] == {"saw": KNOWN_FPID} and event["data"]["fpid"] == KNOWN_FPID
