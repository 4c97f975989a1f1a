"""Rockstat front's two built-in enrichers, run inside the edge (no service to deploy).

- ``fpid``: a fingerprint of the visitor's network and browser, ``xxHash64("<ip>:<ua>")``
  with seed ``0xCACA3ADA``, as a decimal string in ``data.fpid`` (the store's
  ``td_fpid``). ``<ip>`` is what the edge's IP policy keeps (:mod:`broker.privacy`: the
  /24 by default, the whole address with ``keep``): the hash is not keyed, so one of the
  whole address would give the address back to anyone trying every IPv4 address. Front read the hash's 8 bytes, which its xxhash binding wrote in the
  machine's (little-endian) order, as a big-endian number: the value is the hash with
  its bytes reversed, ``int.from_bytes(xxh64(...).digest(), "little")``. band keeps
  that, so with ``ip_policy: keep`` a visitor's fpid equals the one Rockstat stored.
- ``stored``: what services saved about the visitor, the Redis hash ``s:<uid>``
  (``HGETALL``, each value JSON-decoded; a value that is not JSON stays a string) in
  ``data.stored``; only when ``redis_url`` is set, within the key's enrich deadline.

Each runs on the keys under its prefix (``builtin_enrichers``; both ``in.gen.track``
by default). ``fpid`` is computed before the enrich request, so enricher services see
it; ``stored`` is read while they work.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import xxhash

from band import wire

from .config import EdgeConfig
from .metrics import Metrics
from .privacy import IpPolicy

log = logging.getLogger("broker.builtin")

FPID_SEED = 0xCACA3ADA


def fpid(ip: str, ua: str) -> str:
    """Front's fingerprint of ``ip`` and ``ua`` (see the module docstring for the byte order)."""
    return str(int.from_bytes(xxhash.xxh64(f"{ip}:{ua}".encode(), seed=FPID_SEED).digest(), "little"))


def stored_key(uid: str) -> str:
    return f"s:{uid}"


def decode_stored(raw: dict[Any, Any]) -> dict[str, Any]:
    """``HGETALL`` bytes as ``{field: JSON value}``."""
    out: dict[str, Any] = {}
    for field, value in raw.items():
        name = field.decode("utf-8", "replace") if isinstance(field, bytes) else str(field)
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        try:
            out[name] = json.loads(text)
        except ValueError:
            out[name] = text
    return out


class Builtins:
    """The built-in enrichers of one edge; :meth:`start`/:meth:`stop` own the Redis client."""

    def __init__(self, config: EdgeConfig, metrics: Metrics, ip_policy: IpPolicy | None = None) -> None:
        self._fpid = config.builtin_enrichers.get("fpid")
        self._ip_policy = ip_policy
        self._stored = config.builtin_enrichers.get("stored") if config.redis_url else None
        self._redis_url = config.redis_url
        self._metrics = metrics
        self._redis: Any = None

    @property
    def active(self) -> bool:
        return self._fpid is not None or self._stored is not None

    async def start(self) -> None:
        if self._stored is not None:
            import redis.asyncio as aioredis  # the `redis` extra; only needed with redis_url

            self._redis = aioredis.from_url(self._redis_url, socket_connect_timeout=1.0)

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def begin(self, message: dict[str, Any]) -> asyncio.Task[Any] | None:
        """Fill ``data.fpid`` now; start reading ``s:<uid>`` (the task to :meth:`finish`)."""
        key: str = message["key"]
        if self._fpid is not None and wire.key_matches(self._fpid, key):
            td = message["td"]
            if td.get("ip") and td.get("ua"):
                ip = td["ip"] if self._ip_policy is None else self._ip_policy.kept(message)
                if ip:
                    message["data"]["fpid"] = fpid(ip, td["ua"])
        if self._redis is not None and self._stored is not None and wire.key_matches(self._stored, key):
            task: asyncio.Task[Any] = asyncio.ensure_future(self._redis.hgetall(stored_key(message["uid"])))
            return task
        return None

    async def finish(self, task: asyncio.Task[Any], message: dict[str, Any], timeout: float) -> None:
        """Wait for ``s:<uid>`` up to ``timeout``; a late or failed read is skipped and counted."""
        done, _ = await asyncio.wait((task,), timeout=timeout)
        if not done:
            task.cancel()
            self._metrics.enricher_timeouts.labels("stored").inc()
            return
        try:
            raw = task.result()
        except Exception as exc:  # noqa: BLE001 - Redis down or refusing: the hit goes on without it
            self._metrics.enricher_errors.labels("stored").inc()
            log.warning("stored: reading %s failed: %r", stored_key(message["uid"]), exc)
            return
        if raw:
            message["data"]["stored"] = decode_stored(raw)


__all__ = ["FPID_SEED", "Builtins", "decode_stored", "fpid", "stored_key"]
