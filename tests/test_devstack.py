"""`band up`: NATS, the edge and services from one command; Ctrl-C stops all in order."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import nats
import pytest
from support.poll import pinged, wait_for

from band.cli.devstack import ports
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port, port_in_use

SERVICE = '''
from band import expose, response

@expose.handler()
async def hello(data, **params):
    return {"hello": data.get("who", "world")}
'''

BROKEN = '''
print("opening the warehouse database")
raise SystemExit("warehouse database unreachable")
'''


class BandUp:
    """`band up` of the services in ``tmp_path/services``, run in ``tmp_path``, its output collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode())

    @property
    def text(self) -> str:
        return "".join(self.lines)

    async def wait_for_line(self, needle: str, timeout: float = 90) -> None:
        await wait_for(lambda: needle in self.text or self.proc.returncode is not None, timeout, what=f"{needle!r} from band up")
        assert needle in self.text, self.text

    async def finish(self, timeout: float = 60) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self.reader, 10)
        return code

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()


async def band_up(tmp_path: Path, port: int, *args: str, services: dict[str, str] | None = None,
                  env: dict[str, str] | None = None) -> BandUp:
    """Without NATS_URL (unless ``env`` sets it): band up starts its own nats-server."""
    for name, code in (services or {"greeter": SERVICE}).items():
        folder = tmp_path / "services" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "main.py").write_text(code)
    base = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "PORT")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "up", "services", "--port", str(port), *args,
        env={**base, **(env or {})}, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    return BandUp(proc)


@pytest.mark.slow
async def test_band_up_is_up_when_it_says_so_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    up = await band_up(tmp_path, port)
    try:
        await up.wait_for_line("band is up")
        url_file = tmp_path / ".band" / "nats.url"
        url = url_file.read_text().strip()
        assert url.startswith("nats://127.0.0.1:") and not url.endswith(":4222"), "its own server, on a free port"
        assert "started nats-server" in up.text and f"edge: http://127.0.0.1:{port}/" in up.text
        edge_file = tmp_path / ".band" / "edge.url"
        assert edge_file.read_text().strip() == f"http://127.0.0.1:{port}", "band demo run here finds the edge"
        nc = await nats.connect(url)
        try:
            assert await pinged(nc, "greeter"), "'band is up' came before the service was discoverable"
        finally:
            await nc.close()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/pixel/p") as resp:
                assert resp.status == 200 and resp.content_type == "image/gif"

            # "band is up" waits for the edge's discovery too: the first hit reaches the service
            async with http.get(f"http://127.0.0.1:{port}/greeter/hello?who=band") as resp:
                assert resp.status == 200 and await resp.json() == {"hello": "band"}, "band is up before the edge routed to the service"
        listed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "band", "ls", cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k != "NATS_URL"},
        )
        out, _ = await asyncio.wait_for(listed.communicate(), 30)
        assert listed.returncode == 0 and "greeter  (1 instance" in out.decode(), "band ls here reads ./.band/nats.url"
        up.proc.send_signal(signal.SIGINT)
        assert await up.finish() == 0
    finally:
        await up.close()
    assert "greeter | exited with 0" in up.text and "edge | exited with 0" in up.text
    assert up.text.index("greeter | exited with 0") < up.text.index("edge | exited with 0"), "services stop before the edge"
    assert not url_file.exists(), "band up removes ./.band/nats.url on the way out"
    assert not edge_file.exists(), "and ./.band/edge.url"


@pytest.mark.slow
async def test_band_up_refuses_a_taken_port_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = await band_up(tmp_path, port)
        try:
            assert await up.finish() == 1
        finally:
            await up.close()
    assert up.text.strip().splitlines() == [f"band up: port {port} is in use (another band up, or another program); stop it or choose another --port"]
    assert not (tmp_path / ".band").exists(), "nothing started: no nats-server, no state"


@pytest.mark.slow
async def test_a_service_that_dies_during_start_stops_the_stack(tmp_path: Path) -> None:
    port = free_port()
    up = await band_up(tmp_path, port, services={"greeter": SERVICE, "warehouse": BROKEN})
    try:
        assert await up.finish() == 1
    finally:
        await up.close()
    assert "band is up" not in up.text
    report = up.text[up.text.index("band up: warehouse exited with 1 during start"):]
    assert "opening the warehouse database" in report and "warehouse database unreachable" in report, up.text
    assert "greeter | exited with 0" in up.text, "the rest of the stack was stopped"
    assert not port_in_use(port) and not (tmp_path / ".band" / "nats.url").exists()


@pytest.mark.slow
async def test_keep_going_keeps_the_rest_and_a_named_nats_is_used(tmp_path: Path, nats_server: NatsServer) -> None:
    up = await band_up(tmp_path, free_port(), "--keep-going", services={"greeter": SERVICE, "warehouse": BROKEN},
                       env={"NATS_URL": nats_server.url})
    try:
        await up.wait_for_line("band is up")
        assert f"NATS at {nats_server.url} (from NATS_URL" in up.text and "started nats-server" not in up.text
        assert "band up: warehouse exited with 1 during start" in up.text and "services: greeter, store\n" in up.text
        assert not (tmp_path / ".band" / "nats.url").exists(), "a named NATS is not band up's to announce"
        up.proc.send_signal(signal.SIGTERM)
        assert await up.finish() == 0
    finally:
        await up.close()


@pytest.mark.slow
async def test_band_up_killed_takes_its_children_along(tmp_path: Path) -> None:
    """SIGKILL on `band up` (no chance to clean up): NATS, the edge and services still stop."""
    up = await band_up(tmp_path, free_port())
    proc = up.proc

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == proc.pid:  # ppid
                found.append(int(stat.parent.name))
        return found

    try:
        await wait_for(lambda: len(children()) >= 3, timeout=60, what="nats-server, edge and service started")
        started = children()
        proc.kill()
        await proc.wait()

        def alive(pid: int) -> bool:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                return False
            return state != "Z"

        def gone() -> bool:
            return not any(alive(pid) for pid in started)

        await wait_for(gone, timeout=30, what="the children of a killed band up to exit")
    finally:
        await up.close()


def test_band_up_checks_the_metrics_ports_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METRICS_PORT", raising=False)
    assert ports(8080, 3) == [8080]
    monkeypatch.setenv("METRICS_PORT", "9100")
    assert ports(8080, 3) == [8080, 9100, 9101, 9102], "each service's /metrics port is checked before anything starts"


async def test_a_reload_while_the_stack_starts_is_not_a_death() -> None:
    """``band up --reload``: a service restarted for a change while ``band up`` still
    waits for the rest of the stack is replaced, not reported as dead (which stopped
    everything)."""
    from band.cli.child import Child
    from band.cli.devstack import _until_ready

    calls = 0
    ready = asyncio.Event()

    async def probe() -> bool:
        nonlocal calls
        calls += 1
        return ready.is_set()

    child = Child("svc", [sys.executable, "-c", "pass"], dict(os.environ), probe)
    child.start(3)
    assert child.process is not None
    await asyncio.to_thread(child.process.wait)
    loop = asyncio.get_running_loop()
    with child.replacing():  # the old process is gone, the new one not started yet
        waiting = asyncio.ensure_future(_until_ready([child], loop.time() + 30, keep_going=False))
        await wait_for(lambda: calls >= 2 or waiting.done(), 10, "the start loop to poll the child")
        assert not waiting.done(), waiting.exception() if waiting.done() else ""
        child.args = [sys.executable, "-c", "import time; time.sleep(60)"]
        child.start(3)
    ready.set()
    try:
        assert await asyncio.wait_for(waiting, 10) == [child]
    finally:
        await asyncio.to_thread(child.stop)
