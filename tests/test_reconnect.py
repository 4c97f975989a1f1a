"""A lost NATS connection is reconnected and subscriptions resume."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.poll import wait_for

import band
from band import App
from band._runtime.connect import connect, inbox_prefix_for
from band._runtime.service import ServiceOptions
from band.cli.natsserver import NatsServer
from band.testing import serve


@pytest.mark.slow
async def test_service_survives_a_nats_restart(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path / "js").start()
    try:
        app, caller = App("survivor"), App("survivor-caller")

        @app.expose()
        async def ping(**params: Any) -> str:
            return "pong"

        async with serve(app, server.url), serve(caller, server.url):
            assert await caller.rpc.request("survivor", "ping") == "pong"
            server.kill()
            with pytest.raises(band.RPCError):  # down: a typed error, not a hang or a None
                await caller.rpc.request("survivor", "ping", timeout__=0.5)
            server.process = None
            await asyncio.to_thread(server.start)  # same port, same store

            async def answers() -> bool:
                try:
                    return await caller.rpc.request("survivor", "ping", timeout__=0.5) == "pong"
                except band.RPCError:
                    return False

            await wait_for(answers, timeout=20, what="RPC after the restart")
    finally:
        server.stop()


async def test_in_flight_work_is_bounded(nats_url: str) -> None:
    app, caller = App("bounded", settings={"max_inflight": 3}), App("bounded-caller")
    running = 0
    peak = 0
    gate = asyncio.Event()

    @app.expose()
    async def work(**params: Any) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return 1

    assert ServiceOptions.from_app(app).max_inflight == 3
    async with serve(app, nats_url), serve(caller, nats_url):
        calls = [asyncio.ensure_future(caller.rpc.request("bounded", "work", timeout__=10)) for _ in range(12)]
        await wait_for(lambda: running == 3, what="three requests running")
        gate.set()
        assert await asyncio.gather(*calls) == [1] * 12
    assert peak == 3


def test_credentials_move_out_of_urls() -> None:
    from band._runtime.connect import split_credentials

    servers, options = split_credentials(["nats://svc:p%40ss@h1:4222", "nats://svc:p%40ss@h2:4223"])
    assert servers == ["nats://h1:4222", "nats://h2:4223"] and options == {"user": "svc", "password": "p@ss"}
    assert split_credentials(["nats://tok@h:1"]) == (["nats://h:1"], {"token": "tok"})
    assert split_credentials(["h:1"]) == (["h:1"], {})  # left as given when there is nothing to move
    with pytest.raises(ValueError, match="same credentials"):
        split_credentials(["nats://a:b@h:1", "nats://c:d@h:2"])


def test_inbox_prefix_is_the_client_name_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_INBOX_PREFIX", raising=False)
    assert inbox_prefix_for("crm") == "_INBOX_crm"
    assert inbox_prefix_for("band-edge") == "_INBOX_band-edge"
    assert inbox_prefix_for("a.b *>c") == "_INBOX_a_b___c"  # one subject token
    monkeypatch.setenv("NATS_INBOX_PREFIX", "_INBOX_shared")
    assert inbox_prefix_for("crm") == "_INBOX_shared"
    assert inbox_prefix_for("crm", "_INBOX_mine") == "_INBOX_mine"


async def test_connect_uses_the_inbox_prefix(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_INBOX_PREFIX", raising=False)
    nc = await connect(nats_url, name="crm")
    try:
        assert nc.new_inbox().startswith("_INBOX_crm.")
        assert (await nc.jetstream().account_info()) is not None  # a request answered on that prefix
    finally:
        await nc.close()
