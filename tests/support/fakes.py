"""Raw nats-py services that follow the wire contract (band/wire.py) with no framework.

The edge's tests use them for contract edge cases (garbage replies, error headers,
slow enrichers) and while band's own service runtime is not needed.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from band import wire
from band._runtime.connect import flush
from broker.app import EDGE, Edge, make_app
from broker.config import EdgeConfig
from support.poll import wait_for

Reply = tuple[dict[str, str] | None, bytes]
Fn = Callable[[dict[str, Any]], Awaitable[Reply | None]]


BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"  # a person's


def unique(prefix: str) -> str:
    """A service name no other test uses (tests share one nats-server)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def typed(value: Any) -> Reply:
    """A typed-response reply (a dict such as ``response.pixel().to_wire()``)."""
    return None, wire.encode(value)


@dataclass
class Endpoint:
    name: str
    subject: str
    metadata: dict[str, str]
    fn: Fn


@dataclass
class FakeService:
    """One ADR-32 service instance: its endpoints plus ``$SRV.INFO`` answers."""

    nc: Client
    name: str
    endpoints: list[Endpoint] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    subs: list[Subscription] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def handler(self, name: str, fn: Fn, *, timeout_ms: int = 2000, path: str = "", alias: str | None = None) -> FakeService:
        key = f"{wire.KEY_PREFIX}.{alias or self.name}.{name}"
        md = wire.endpoint_metadata(wire.ROLE_HANDLER, key=key, timeout=timeout_ms, path=path, alias=alias, method=name)
        self.endpoints.append(Endpoint(name, wire.handle_subject(key), md, fn))
        return self

    def enricher(self, fn: Fn, keys: list[str], bots: bool = True) -> FakeService:
        md = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=keys, props={}, method="enrich", bots=bots)
        for prefix in keys or [""]:
            self.endpoints.append(Endpoint("enrich", wire.prefix_subject(wire.ENRICH_PREFIX, prefix), md, fn))
        return self

    def rpc(self, method: str, fn: Fn) -> FakeService:
        md = wire.endpoint_metadata(wire.ROLE_RPC, method=method)
        self.endpoints.append(Endpoint(method, wire.rpc_subject(self.name, method), md, fn))
        return self

    def info(self) -> dict[str, Any]:
        return {
            "type": wire.MICRO_INFO_TYPE,
            "name": self.name,
            "id": self.id,
            "version": "0.1.0",
            "metadata": {"band": wire.PROTOCOL_VERSION},
            "description": "",
            "endpoints": [
                {"name": ep.name, "subject": ep.subject, "queue_group": wire.queue_group(self.name), "metadata": ep.metadata}
                for ep in self.endpoints
            ],
        }

    async def start(self) -> FakeService:
        for ep in self.endpoints:
            self.subs.append(await self.nc.subscribe(ep.subject, queue=wire.queue_group(self.name), cb=self._serve(ep)))
        for subject in (f"{wire.SRV_PREFIX}.INFO", f"{wire.SRV_PREFIX}.INFO.{self.name}", f"{wire.SRV_PREFIX}.INFO.{self.name}.{self.id}"):
            self.subs.append(await self.nc.subscribe(subject, cb=self._info))
        await flush(self.nc)  # twice: nats-py may send the PING ahead of the SUBs
        return self

    async def stop(self) -> None:
        for sub in self.subs:
            await sub.unsubscribe()
        self.subs.clear()
        await flush(self.nc)  # twice: nats-py may send the PING ahead of the SUBs

    async def __aenter__(self) -> FakeService:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _info(self, msg: Msg) -> None:
        if msg.reply:
            await self.nc.publish(msg.reply, json.dumps(self.info()).encode())

    def _serve(self, ep: Endpoint) -> Callable[[Msg], Awaitable[None]]:
        is_enricher = ep.metadata[wire.MD_ROLE] == wire.ROLE_ENRICHER

        async def serve(msg: Msg) -> None:
            message = json.loads(msg.data)
            self.calls.append(message)
            reply = await ep.fn(message)
            if reply is None or not msg.reply:
                return
            headers, body = reply
            if is_enricher:
                headers = {**(headers or {}), wire.SERVICE_HEADER: self.name}
            await self.nc.publish(msg.reply, body, headers=headers)

        return serve


def returns(value: Any) -> Fn:
    """An endpoint function that always answers ``value`` as a typed response."""

    async def fn(message: dict[str, Any]) -> Reply:
        return typed(value)

    return fn


def enriches(value: Any) -> Fn:
    """An enricher that always adds ``value``."""

    async def fn(message: dict[str, Any]) -> Reply:
        return None, wire.encode(value)

    return fn


def fails(code: int, description: str) -> Fn:
    async def fn(message: dict[str, Any]) -> Reply:
        return wire.error_headers(code, description), b""

    return fn


def raw(body: bytes) -> Fn:
    async def fn(message: dict[str, Any]) -> Reply:
        return None, body

    return fn


# --- a running edge -------------------------------------------------------------------


def edge_config(nats_url: str, **changes: Any) -> EdgeConfig:
    """Test defaults: fast discovery, an in-memory stream."""
    base: dict[str, Any] = dict(
        nats_urls=(nats_url,),
        discovery_interval_s=0.2,
        discovery_window_s=0.1,
        handler_timeout_ms=2000,  # a loaded CI box must not turn slow fakes into 504s
        stream_storage="memory",
        stream_max_msgs=100_000,
    )
    base.update(changes)
    return EdgeConfig(**base)


@contextlib.asynccontextmanager
async def running_edge(nats_url: str, **changes: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Edge]]:
    """An edge on 127.0.0.1:<free port> with a client; stopped on exit."""
    app = make_app(edge_config(nats_url, **changes))
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield client, app[EDGE]
    finally:
        await client.close()


async def routed(edge: Edge, key: str, present: bool = True) -> None:
    """Wait until discovery knows (or forgot) the handler of ``key``."""
    await wait_for(lambda: (edge.discovery.snapshot.handler(key) is not None) == present, timeout=10, what=f"handler {key} routed={present}")


async def enrichers_seen(edge: Edge, key: str, services: set[str]) -> None:
    await wait_for(lambda: edge.discovery.snapshot.enricher_services(key) == frozenset(services), timeout=10, what=f"enrichers {services} for {key}")
