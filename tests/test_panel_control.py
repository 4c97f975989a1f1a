"""Control of band up's processes over its unix socket, and ``band panel`` as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from support.poll import wait_for

from band.cli.child import Child
from band.cli.ports import free_port
from band.panel.control import ControlClient, serving, start_child

SLEEPER = "import sys, time; print('ready', flush=True); time.sleep(600)"


async def test_restart_stop_start_with_last_lines(tmp_path: Path) -> None:
    child = Child("sleeper", [sys.executable, "-c", SLEEPER], dict(os.environ))
    panel = Child("panel", [sys.executable, "-c", SLEEPER], dict(os.environ))
    socket = tmp_path / "control.sock"
    await start_child(child, 8)
    try:
        async with serving([child, panel], 8, socket):
            assert socket.stat().st_mode & 0o077 == 0, "only band up's user may open the socket"
            client = ControlClient(socket)
            await wait_for(lambda: "ready" in child.last, timeout=10, what="the child's first line")
            listing = await client.children()
            first = {c["name"]: c for c in listing["children"]}["sleeper"]
            assert listing["available"] and first["state"] == "running" and first["lines"] == ["ready"]
            pid = first["pid"]

            status, body = await client.act("sleeper", "restart")
            assert status == 200 and body["state"] == "running" and body["pid"] != pid and body["restarts"] == 1
            status, body = await client.act("sleeper", "stop")
            assert status == 200 and body["state"] == "stopped" and body["pid"] is None
            status, body = await client.act("sleeper", "start")
            assert status == 200 and body["state"] == "running"
            status, body = await client.act("panel", "stop")
            assert status == 409, "the panel cannot stop itself"
            status, body = await client.act("nobody", "stop")
            assert status == 404 and "nobody" in body["error"]
        assert not socket.exists()
    finally:
        await asyncio.to_thread(child.stop)
    assert not ControlClient(None).available
    assert (await ControlClient(tmp_path / "absent.sock").children())["available"] is False


async def test_band_panel_refuses_a_public_address_without_credentials() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANEL_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "panel", "--host", "0.0.0.0", "--port", str(free_port()),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and b"PANEL_TOKEN" in err


async def test_band_panel_serves_and_stops_on_sigterm(nats_url: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANEL_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "panel", "--port", str(port), "--nats", nats_url,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert f"http://127.0.0.1:{port}/login?token=" in line, line
        async with aiohttp.ClientSession() as http:
            async with http.get(line.split(" on ", 1)[1].strip(), allow_redirects=False) as resp:
                assert resp.status == 303 and "HttpOnly" in resp.headers["Set-Cookie"], "the printed link logs in"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class BlockingChild:
    """A process kept the blocking way (subprocess.Popen, start/stop plain functions)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.last: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, width: int) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.DEVNULL)
        self.last.append("started")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


async def test_control_of_blocking_children(tmp_path: Path) -> None:
    child = BlockingChild("plain")
    child.start(5)
    try:
        async with serving([child], 5, tmp_path / "c.sock"):
            client = ControlClient(tmp_path / "c.sock")
            first = (await client.children())["children"][0]
            assert first["state"] == "running" and first["lines"] == ["started"]
            status, body = await client.act("plain", "restart")
            assert status == 200 and body["state"] == "running" and body["pid"] != first["pid"]
            status, body = await client.act("plain", "stop")
            assert body["state"] == "stopped"
    finally:
        child.stop()
