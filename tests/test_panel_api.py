"""The panel's API against a real nats-server, real services and a real panel on a free port."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from support.poll import wait_for

from band import App, RPCError
from band.cli.ports import free_port
from band.panel.app import running
from band.panel.config import PanelConfig, PanelConfigError, from_env
from band.testing import serve

TOKEN = "test-token-0123456789"


def calc_app() -> App:
    app = App("calc")

    @app.expose()
    async def add(a: int, b: int) -> int:
        return a + b

    @app.expose()
    async def teapot() -> None:
        raise RPCError("I am a teapot", 418)

    return app


@asynccontextmanager
async def panel(nats_url: str, **extra: Any) -> AsyncIterator[str]:
    config = PanelConfig(port=free_port(), nats_url=nats_url, token=TOKEN, edge_urls=(), interval_s=0.5, **extra)
    async with running(config) as base:
        yield base


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def rpc(http: aiohttp.ClientSession, base: str, body: Any) -> tuple[int, Any]:
    async with http.post(f"{base}/api/rpc", data=body if isinstance(body, (str, bytes)) else json.dumps(body), headers=bearer()) as resp:
        return resp.status, (await resp.json() if resp.status != 204 else None)


async def test_auth_refused_without_token_accepted_with_it(nats_url: str) -> None:
    async with panel(nats_url) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/overview") as resp:
            assert resp.status == 401 and "PANEL_TOKEN" in (await resp.json())["error"]
        async with http.get(f"{base}/api/overview", headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.get(f"{base}/api/overview", headers=bearer()) as resp:
            assert resp.status == 200 and "services" in await resp.json()
        async with http.get(f"{base}/", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/login"


async def test_login_sets_a_strict_http_only_session_and_checks_the_origin(nats_url: str) -> None:
    async with panel(nats_url) as base, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # unsafe: cookies for 127.0.0.1
        async with http.post(f"{base}/login", data={"token": "nope"}, headers={"Origin": base}) as resp:
            assert resp.status == 401
        async with http.post(f"{base}/login", data={"token": TOKEN}, headers={"Origin": base}, allow_redirects=False) as resp:
            assert resp.status == 303
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with http.get(f"{base}/api/overview") as resp:
            assert resp.status == 200  # the session cookie is enough to read
        call = json.dumps({"jsonrpc": "2.0", "method": "calc.add", "params": {"a": 1, "b": 2}, "id": 1})
        async with http.post(f"{base}/api/rpc", data=call, headers={"Origin": "http://evil.example"}) as resp:
            assert resp.status == 403 and "cross-origin" in (await resp.json())["error"]
        async with http.post(f"{base}/api/rpc", data=call) as resp:
            assert resp.status == 403, "a cookie alone, with no origin at all, may not change anything"
        async with http.post(f"{base}/api/rpc", data=call, headers={"Origin": base}) as resp:
            assert resp.status == 200
        async with http.post(f"{base}/api/rpc", data=call, headers={**bearer(), "Origin": "http://evil.example"}) as resp:
            assert resp.status == 403, "even the token does not let another site's page in"


def test_refuses_to_listen_beyond_localhost_without_credentials() -> None:
    with pytest.raises(PanelConfigError, match="PANEL_TOKEN"):
        from_env({"PANEL_HOST": "0.0.0.0"})
    assert from_env({"PANEL_HOST": "0.0.0.0", "PANEL_TOKEN": secrets.token_urlsafe(24)}).host == "0.0.0.0"
    assert from_env({"PANEL_HOST": "0.0.0.0", "PANEL_USER": "ops", "PANEL_PASSWORD": "correct-horse-battery"}).user == "ops"
    local = from_env({})
    assert local.token_generated and len(local.token) >= 20, "on localhost a token is made up and printed"


@pytest.mark.parametrize("weak", ["x", "0123456789abcde", "x" * 40, "abababababababababab"])
@pytest.mark.parametrize("name", ["PANEL_TOKEN", "PANEL_PASSWORD"])
def test_a_guessable_secret_is_refused_beyond_localhost(name: str, weak: str) -> None:
    """Fewer than 16 characters, or fewer than 8 different ones: refused on a public address,
    with the command that makes a good token; on localhost the same secret still serves."""
    env = {name: weak, **({"PANEL_USER": "ops"} if name == "PANEL_PASSWORD" else {})}
    with pytest.raises(PanelConfigError) as refused:
        from_env({"PANEL_HOST": "0.0.0.0", **env})
    message = str(refused.value)
    assert name in message and "python -c 'import secrets; print(secrets.token_urlsafe(24))'" in message
    assert "127.0.0.1" in message, "the message names the other way out: bind to localhost"
    assert from_env({"PANEL_HOST": "127.0.0.1", **env}).host == "127.0.0.1"


async def test_band_panel_with_a_short_token_on_a_public_address_does_not_start() -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PANEL_")}, "PANEL_TOKEN": "x"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "panel", "--host", "0.0.0.0", "--port", str(free_port()),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and b"band panel on" not in out
    assert b"PANEL_TOKEN is too easy to guess" in err and b"secrets.token_urlsafe(24)" in err, err


async def test_basic_auth(nats_url: str) -> None:
    async with panel(nats_url, user="ops", password="pa55") as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/overview", headers={"Authorization": basic("ops", "pa55")}) as resp:
            assert resp.status == 200
        async with http.get(f"{base}/api/overview", headers={"Authorization": basic("ops", "wrong")}) as resp:
            assert resp.status == 401


async def test_json_rpc_single_batch_unknown_and_errors(nats_url: str) -> None:
    async with serve(calc_app(), nats_url), panel(nats_url) as base, aiohttp.ClientSession() as http:
        status, answer = await rpc(http, base, {"jsonrpc": "2.0", "method": "calc.add", "params": {"a": 2, "b": 3}, "id": 7})
        assert status == 200 and answer == {"jsonrpc": "2.0", "result": 5, "id": 7}

        status, answer = await rpc(http, base, [
            {"jsonrpc": "2.0", "method": "calc.add", "params": {"a": 1, "b": 1}, "id": "a"},
            {"jsonrpc": "2.0", "method": "calc.teapot", "id": "b"},
            {"jsonrpc": "2.0", "method": "calc.add", "params": {"a": 1, "b": 1}},  # a notification: no answer
            {"jsonrpc": "2.0", "method": "nobody.here", "id": "c"},
            {"jsonrpc": "2.0", "method": "calc.add", "params": [1, 2], "id": "d"},
        ])
        assert status == 200 and len(answer) == 4
        by_id = {a["id"]: a for a in answer}
        assert by_id["a"]["result"] == 2
        assert by_id["b"]["error"]["code"] == -32000 and by_id["b"]["error"]["message"] == "I am a teapot"
        assert by_id["b"]["error"]["data"] == {"code": 418}
        assert by_id["c"]["error"]["code"] == -32601 and by_id["c"]["error"]["data"] == {"code": 503}
        assert by_id["d"]["error"]["code"] == -32602

        status, answer = await rpc(http, base, {"jsonrpc": "2.0", "method": "calc.nosuch", "id": 1})
        assert answer["error"]["code"] == -32601
        status, answer = await rpc(http, base, {"jsonrpc": "2.0", "method": "calc.add", "params": {"a": 1}, "id": 1})
        assert answer["error"]["code"] == -32602 and answer["error"]["data"]["code"] == 400
        status, answer = await rpc(http, base, {"jsonrpc": "2.0", "method": "not a method", "id": 2})
        assert answer["error"]["code"] == -32601
        status, answer = await rpc(http, base, b"{not json")
        assert status == 200 and answer["error"]["code"] == -32700 and answer["id"] is None
        status, answer = await rpc(http, base, {"method": "calc.add", "id": 3})
        assert answer["error"]["code"] == -32600 and answer["id"] == 3
        status, answer = await rpc(http, base, [])
        assert answer["error"]["code"] == -32600
        status, answer = await rpc(http, base, {"jsonrpc": "2.0", "method": "calc.add", "params": {"a": 1, "b": 2}})
        assert status == 204 and answer is None


async def test_overview_shows_a_service_with_real_rates_and_its_disappearance(nats_url: str, nc: Any) -> None:
    async with panel(nats_url) as base, aiohttp.ClientSession(headers=bearer(), timeout=aiohttp.ClientTimeout(total=20)) as http:

        async def services() -> dict[str, Any]:
            async with http.get(f"{base}/api/services") as resp:
                return {s["name"]: s for s in (await resp.json())["services"]}

        async with serve(calc_app(), nats_url):
            await wait_for(lambda: _has(services, "calc", "up"), timeout=10, what="calc on the overview")

            async def busy() -> bool:
                for _ in range(20):
                    await nc.request("band.rpc.calc.add", b'{"a": 1, "b": 2}', timeout=2)
                ep = {e["method"]: e for e in (await services())["calc"]["endpoints"]}["add"]
                return bool(ep["rate"] > 0 and ep["requests"] >= 20 and ep["latency_ms"] is not None and ep["spark"].startswith("<svg"))

            await wait_for(busy, timeout=15, what="a request rate for calc.add")
            calc = (await services())["calc"]
            assert calc["roles"] == ["rpc"] and calc["instances"][0]["uptime_s"] is not None
        await wait_for(lambda: _has(services, "calc", "down"), timeout=10, what="calc shown down after it stopped")
        async with http.get(f"{base}/api/overview") as resp:
            changes = [(c["service"], c["change"]) for c in (await resp.json())["changes"]]
        assert ("calc", "down") in changes and ("calc", "up") in changes


async def _has(services: Any, name: str, status: str) -> bool:
    found = (await services()).get(name)
    return found is not None and found["status"] == status


async def test_the_sampler_stops_even_when_a_round_swallows_the_cancel(nats_url: str, nc: Any) -> None:
    """nats-py's request under Python 3.11's ``wait_for`` can drop a cancellation; the
    sampler's loop must end anyway, or the panel's shutdown waits for it forever."""
    import asyncio

    from band.panel.sampler import Sampler

    entered = asyncio.Event()

    class Swallowing(Sampler):
        async def sample(self) -> None:
            entered.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                pass  # what a swallowed cancel looks like from here

    config = PanelConfig(port=free_port(), nats_url=nats_url, token=TOKEN, edge_urls=(), interval_s=0.5)
    async with aiohttp.ClientSession() as http:
        task = asyncio.ensure_future(Swallowing(nc, config, http).run())
        await asyncio.wait_for(entered.wait(), 10)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
    assert task in done and task.cancelled()
