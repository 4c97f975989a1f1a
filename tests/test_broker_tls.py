"""``python -m broker --certfile --keyfile``: the edge serves HTTPS itself, with a
certificate the test makes (deploy/make-certs.sh); a verifying client gets answers."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from support.poll import wait_for
from support.sdk import make_edge_certs

from band.cli.ports import free_port


@pytest.fixture(scope="module")
def edge_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edge_certs(tmp_path_factory)


async def test_cli_serves_https_and_wss(nats_url: str, edge_certs: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port), "--nats", nats_url,
           "--certfile", str(edge_certs / "server.pem"), "--keyfile", str(edge_certs / "server-key.pem")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    verify = ssl.create_default_context(cafile=str(edge_certs / "ca.pem"))
    try:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    async with session.get(f"https://localhost:{port}/health", ssl=verify) as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectorError:
                    return False

            await wait_for(healthy, timeout=30, what="the edge over TLS")
            async with session.get(f"https://localhost:{port}/track/page", ssl=verify) as resp:
                assert resp.status == 200 and "id" in await resp.json()
                assert "Secure" in resp.headers["Set-Cookie"]
            async with session.ws_connect(f"wss://localhost:{port}/wss", ssl=verify) as ws:
                await ws.send_str(json.dumps({"service": "track", "name": "hello", "id__": 7}))
                answer = json.loads((await ws.receive(timeout=10)).data)
                assert answer["id__"] == 7 and answer["statusCode"] == 200
            with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port gets no answer
                async with session.get(f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    await resp.read()
        proc.terminate()
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_bad_certificate_is_named(edge_certs: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "broker", "--certfile", str(edge_certs / "ca.pem"), "--keyfile", str(edge_certs / "nope.pem")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "TLS" in done.stderr and "nope.pem" in done.stderr
    done = subprocess.run([sys.executable, "-m", "broker", "--certfile", str(edge_certs / "server.pem")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "certfile and keyfile go together" in done.stderr
