"""``redis_factory``: a ``redis.asyncio`` client from ``REDIS_URL`` or the settings.

Optional: ``pip install band[redis]``. Clients it made are closed when the service stops.
"""

from __future__ import annotations

import os
from typing import Any

from .settings import Settings

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisFactory:
    """``redis_factory()`` / ``await redis_factory.create_pool()``: one client, owned by the service."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: list[Any] = []

    def url(self) -> str:
        """``redis_url`` (or ``redis.url``) in settings, then ``REDIS_URL``, then localhost."""
        for key in ("redis_url",):
            if key in self._settings:
                return str(self._settings[key])
        nested = self._settings.get("redis")
        if isinstance(nested, Settings) and "url" in nested:
            return str(nested["url"])
        return os.environ.get("REDIS_URL") or DEFAULT_URL

    def __call__(self, url: str | None = None, **options: Any) -> Any:
        try:
            import redis.asyncio as aioredis
        except ImportError:  # pragma: no cover - depends on the extra
            raise ImportError("redis_factory needs the redis extra: pip install 'band[redis]'") from None
        client = aioredis.from_url(url or self.url(), **options)
        self._clients.append(client)
        return client

    async def create_pool(self, url: str | None = None, **options: Any) -> Any:
        """The original API's coroutine form; returns the same kind of client."""
        return self(url, **options)

    async def close(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()
