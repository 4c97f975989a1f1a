"""Faults and lifecycle: NATS down answers 503 fast; shutdown finishes in-flight hits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from support.fakes import FakeService, edge_config, running_edge, typed, unique
from support.poll import wait_for
from support.processes import start_edge

from band.cli.natsserver import NatsServer
from broker.app import EDGE, make_app


@pytest.mark.slow
async def test_nats_down_answers_503_then_recovers(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path / "js").start()
    try:
        async with running_edge(server.url, publish_timeout_ms=500) as (client, edge):
            assert (await client.get("/track/a")).status == 200
            server.stop()
            await wait_for(lambda: not edge.nc.is_connected, timeout=10, what="edge sees NATS down")
            down = await client.get("/track/b")
            assert down.status == 503 and "message" in await down.json()
            assert (await client.get("/health")).status == 503
            server.start()  # same port, same store
            await wait_for(lambda: edge.nc.is_connected, timeout=15, what="edge reconnects")

            async def healthy() -> bool:
                return (await client.get("/health")).status == 200

            await wait_for(healthy, timeout=15, what="health back to 200")
            assert (await client.get("/track/c")).status == 200
    finally:
        server.stop()


async def test_shutdown_finishes_in_flight_hits(nc: Any, nats_url: str) -> None:
    svc = unique("slowh")
    release = asyncio.Event()
    entered = asyncio.Event()

    async def wait(message: dict[str, Any]) -> Any:
        entered.set()
        await release.wait()
        return typed({"type__": "data", "statusCode": 200, "data": {"done": True}})

    async with FakeService(nc, svc).handler("wait", wait, timeout_ms=5000):
        server = TestServer(make_app(edge_config(nats_url, handler_timeout_ms=5000)), host="127.0.0.1", port=0)
        await server.start_server()
        edge = server.app[EDGE]
        await wait_for(lambda: edge.discovery.snapshot.handler(f"in.gen.{svc}.wait") is not None, what="route")
        async with aiohttp.ClientSession() as session:
            pending = asyncio.create_task(session.get(f"http://127.0.0.1:{server.port}/{svc}/wait"))
            await asyncio.wait_for(entered.wait(), 10)
            closing = asyncio.create_task(server.close())
            await wait_for(lambda: not server.runner.sites, what="listening socket closed")  # type: ignore[union-attr]
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"http://127.0.0.1:{server.port}/track/new", timeout=aiohttp.ClientTimeout(total=5))
            release.set()
            resp = await asyncio.wait_for(pending, 10)
            assert resp.status == 200 and await resp.json() == {"done": True}
            await asyncio.wait_for(closing, 15)
        assert edge.nc.is_closed


@pytest.mark.slow
async def test_cli_workers_serve_and_stop(nats_url: str, tmp_path: Path) -> None:
    """`python -m broker --workers 2` answers on one port and exits cleanly on SIGTERM."""
    edge, port = start_edge(nats_url, tmp_path, args=["--workers", "2"])
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                try:
                    async with session.get(f"{base}/health", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        return bool((await resp.json())["nats"] is True)
                except (TimeoutError, aiohttp.ClientError):
                    return False

            await wait_for(healthy, timeout=30, what="edge workers started", procs=[edge])
            async with session.get(f"{base}/track/page", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                assert "id" in await resp.json()
        assert edge.stop(timeout=30) == 0
    finally:
        edge.kill()


@pytest.mark.slow
async def test_edge_with_user_and_password(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path / "js", extra_args=["--user", "edge", "--pass", "s3cret"]).start()
    try:
        url = f"nats://edge:s3cret@127.0.0.1:{server.port}"
        async with running_edge(url) as (client, _edge):
            resp = await client.get("/track/auth")
            assert resp.status == 200 and "id" in await resp.json()
    finally:
        server.stop()
