"""redis_factory against the Redis server on 127.0.0.1:6379 of this machine."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from band import App
from band.testing import serve

redis = pytest.importorskip("redis.asyncio")


async def redis_up() -> bool:
    client = redis.from_url("redis://127.0.0.1:6379/0")
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def test_redis_factory_client_from_settings(nats_url: str) -> None:
    if not await redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    app = App("cache", settings={"redis_url": "redis://127.0.0.1:6379/0"})
    key = f"band-test-{uuid.uuid4().hex}"

    @app.expose()
    async def remember(value: str) -> Any:
        client = app.redis_factory()
        await client.set(key, value, ex=60)
        return (await client.get(key)).decode()

    async with serve(app, nats_url):
        caller = App("cache-caller")
        async with serve(caller, nats_url):
            assert await caller.rpc.request("cache", "remember", value="v1") == "v1"
        pool = await app.redis_factory.create_pool()
        assert await pool.get(key) == b"v1"
        await pool.delete(key)


def test_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/1")
    assert App("r1").redis_factory.url() == "redis://env:6379/1"
    assert App("r2", settings={"redis": {"url": "redis://nested/2"}}).redis_factory.url() == "redis://nested/2"
    monkeypatch.delenv("REDIS_URL")
    assert App("r3").redis_factory.url() == "redis://127.0.0.1:6379/0"
