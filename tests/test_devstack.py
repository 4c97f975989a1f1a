"""`band up`: NATS, the edge and services from one command; Ctrl-C stops all in order."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from band.natsserver import free_port
from support.poll import wait_for

SERVICE = '''
from band import expose, response

@expose.handler()
async def hello(data, **params):
    return {"hello": data.get("who", "world")}
'''


async def band_up(tmp_path: Path, port: int, output: int) -> asyncio.subprocess.Process:
    """`band up` of one greeter service, with NATS_URL pointing nowhere: it starts its own."""
    services = tmp_path / "services" / "greeter"
    services.mkdir(parents=True)
    (services / "main.py").write_text(SERVICE)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "up", str(tmp_path / "services"), "--port", str(port), "--data", str(tmp_path / ".band"),
        env={**os.environ, "NATS_URL": f"nats://127.0.0.1:{free_port()}"},
        stdout=output, stderr=asyncio.subprocess.STDOUT if output == asyncio.subprocess.PIPE else output,
    )


@pytest.mark.slow
async def test_band_up_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = await band_up(tmp_path, port, asyncio.subprocess.PIPE)
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            lines.append(line.decode())

    reader = asyncio.ensure_future(read())
    answers: list[object] = []
    try:
        async with aiohttp.ClientSession() as http:

            async def greeted() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/greeter/hello?who=band") as resp:
                        if resp.status == 200:  # the built-in default answers until discovery sees greeter
                            answers.append(await resp.json())
                            return answers[-1] == {"hello": "band"}
                except aiohttp.ClientError:
                    pass
                return False

            await wait_for(greeted, timeout=60, what="the service answering through the edge")
            async with http.get(f"http://127.0.0.1:{port}/pixel/p") as resp:
                assert resp.status == 200 and resp.content_type == "image/gif"
        assert answers[-1] == {"hello": "band"}
        text = "".join(lines)
        assert "started nats-server" in text and f"edge: http://127.0.0.1:{port}/" in text
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await asyncio.wait_for(reader, 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = "".join(lines)
    assert "greeter | exited with 0" in text and "edge | exited with 0" in text
    assert text.index("greeter | exited with 0") < text.index("edge | exited with 0"), "services stop before the edge"


@pytest.mark.slow
async def test_band_up_killed_takes_its_children_along(tmp_path: Path) -> None:
    """SIGKILL on `band up` (no chance to clean up): NATS, the edge and services still stop."""
    proc = await band_up(tmp_path, free_port(), asyncio.subprocess.DEVNULL)

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
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
