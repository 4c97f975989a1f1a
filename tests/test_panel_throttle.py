"""Failed panel logins are rate-limited per client address, in bounded memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from band.cli.ports import free_port
from band.panel.app import running
from band.panel.config import PanelConfig
from band.panel.throttle import LoginThrottle

TOKEN = "throttle-test-token-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_per_address_refills_over_time() -> None:
    clock = Clock()
    throttle = LoginThrottle(burst=3, refill_s=10.0, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("203.0.113.7") == 0
        throttle.failed("203.0.113.7")
    assert throttle.retry_after("203.0.113.7") == 10, "the fourth try waits for one token"
    assert throttle.retry_after("203.0.113.8") == 0, "another address has its own bucket"
    clock.now += 4
    assert throttle.retry_after("203.0.113.7") == 6
    clock.now += 6
    assert throttle.retry_after("203.0.113.7") == 0
    throttle.failed("203.0.113.7")
    assert throttle.retry_after("203.0.113.7") == 10


def test_memory_is_bounded_and_ipv6_counts_per_64() -> None:
    throttle = LoginThrottle(burst=1, refill_s=60.0, max_addresses=100, clock=Clock())
    for i in range(10_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100, "only the most recent addresses are kept"
    assert throttle.retry_after("10.0.39.15") > 0, "the last address is still counted"
    throttle.failed("2001:db8:1:2::1")
    assert throttle.retry_after("2001:db8:1:2:ffff::9") > 0, "the same /64 is one client"
    assert throttle.retry_after("2001:db8:1:3::1") == 0
    throttle.failed("::ffff:192.0.2.1")
    assert throttle.retry_after("192.0.2.1") > 0, "an IPv4-mapped address is its IPv4 address"


@asynccontextmanager
async def panel(nats_url: str, burst: int) -> AsyncIterator[str]:
    config = PanelConfig(port=free_port(), nats_url=nats_url, token=TOKEN, edge_urls=(), login_burst=burst, login_refill_s=30.0)
    async with running(config) as base:
        yield base


@asynccontextmanager
async def client_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client whose connections come from ``address`` (any 127.x.y.z reaches 127.0.0.1)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


async def test_bad_logins_get_429_with_retry_after_and_other_addresses_still_log_in(nats_url: str) -> None:
    async with panel(nats_url, burst=3) as base:
        origin = {"Origin": base}
        async with client_from("127.0.0.2") as guesser:
            for _ in range(3):
                async with guesser.post(f"{base}/login", data={"token": "guess"}, headers=origin) as resp:
                    assert resp.status == 401
            async with guesser.post(f"{base}/login", data={"token": "guess"}, headers=origin) as resp:
                assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= 30
                assert "too many failed logins" in await resp.text()
            async with guesser.post(f"{base}/login", data={"token": TOKEN}, headers=origin, allow_redirects=False) as resp:
                assert resp.status == 429, "while throttled even the right token is not checked"
            async with guesser.get(f"{base}/login?token={TOKEN}", allow_redirects=False) as resp:
                assert resp.status == 429, "nor through the login link"
            async with guesser.get(f"{base}/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 429 and "Retry-After" in resp.headers, "nor in a header"
        async with client_from("127.0.0.3") as user:
            async with user.post(f"{base}/login", data={"token": TOKEN}, headers=origin, allow_redirects=False) as resp:
                assert resp.status == 303, "a good login from another address still works"
            async with user.get(f"{base}/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 200


async def test_wrong_authorization_headers_count_as_failed_logins(nats_url: str) -> None:
    async with panel(nats_url, burst=2) as base, client_from("127.0.0.4") as guesser:
        statuses = []
        for _ in range(3):
            async with guesser.get(f"{base}/api/overview", headers={"Authorization": "Bearer guess"}) as resp:
                statuses.append(resp.status)
        assert statuses == [401, 401, 429]
