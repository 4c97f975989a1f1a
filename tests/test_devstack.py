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
from conftest import wait_for

SERVICE = '''
from band import expose, response

@expose.handler()
async def hello(data, **params):
    return {"hello": data.get("who", "world")}
'''


@pytest.mark.slow
async def test_band_up_serves_and_stops_cleanly(tmp_path: Path) -> None:
    services = tmp_path / "services" / "greeter"
    services.mkdir(parents=True)
    (services / "main.py").write_text(SERVICE)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "up", str(tmp_path / "services"), "--port", str(port), "--data", str(tmp_path / ".band"),
        env={**os.environ, "NATS_URL": f"nats://127.0.0.1:{free_port()}"},  # nothing there: band up starts its own
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
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
