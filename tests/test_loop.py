"""Which event loop band's long-running processes run on, and the dev nats-server's Go threads."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from band._runtime import loop
from band.cli.natsserver import NatsServer


def loop_name() -> str:
    async def name() -> str:
        return type(asyncio.get_running_loop()).__module__

    return loop.run(name())


def test_uvloop_when_installed_and_asyncio_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv("BAND_UVLOOP", raising=False)
    assert loop_name().startswith("uvloop")
    monkeypatch.setenv("BAND_UVLOOP", "0")
    assert loop_name().startswith("asyncio")


def started_with(server: NatsServer) -> dict[str, str]:
    assert server.process is not None
    raw = Path(f"/proc/{server.process.pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_nats_server_runs_one_go_thread_unless_told_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    with NatsServer(store_dir=tmp_path / "a") as server:
        assert started_with(server)["GOMAXPROCS"] == "1"
    monkeypatch.setenv("GOMAXPROCS", "2")
    with NatsServer(store_dir=tmp_path / "b") as server:
        assert started_with(server)["GOMAXPROCS"] == "2"
    assert os.environ["GOMAXPROCS"] == "2"  # ours is left as it was
