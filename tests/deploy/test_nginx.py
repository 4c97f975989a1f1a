"""deploy/nginx-edge.conf, run by a real nginx in front of a real edge: TLS ends at nginx,
the client's address and the asked host reach the edge through the trusted-proxy headers."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fakes import running_edge
from support.poll import wait_for
from support.sdk import DEPLOY, arrivals, make_edge_certs

from band.cli.ports import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="needs nginx (apt-get install nginx-light)")


@pytest.fixture(scope="module")
def edge_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edge_certs(tmp_path_factory)


def render(edge_port: int, https_port: int, http_port: int, certs: Path) -> str:
    """The shipped file with this machine's ports, names and certificates."""
    text = (DEPLOY / "nginx-edge.conf").read_text()
    for old, new in (
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{edge_port};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("/etc/letsencrypt/live/track.example.com/fullchain.pem", str(certs / "server.pem")),
        ("/etc/letsencrypt/live/track.example.com/privkey.pem", str(certs / "server-key.pem")),
        ("track.example.com", "localhost"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx(tmp_path: Path, edge_certs: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(edge_port: int) -> tuple[int, int]:
        https_port, http_port = free_port(), free_port()
        (tmp_path / "edge.conf").write_text(render(edge_port, https_port, http_port, edge_certs))
        (tmp_path / "nginx.conf").write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
            f"  include {tmp_path}/edge.conf;\n}}\n"
        )
        check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        procs.append(subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"], stderr=subprocess.PIPE))
        return https_port, http_port

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


async def test_https_through_nginx(nc: Any, nats_url: str, nginx: Any, edge_certs: Path) -> None:
    verify = ssl.create_default_context(cafile=str(edge_certs / "ca.pem"))
    async with running_edge(nats_url, ip_policy="keep") as (client, _), arrivals(nc, "in.gen.track.>") as seen:  # the address as it came
        https_port, http_port = nginx(client.port)
        # the visitor comes from 127.0.0.2; the edge's peer is nginx on 127.0.0.1 (a trusted proxy)
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), ssl=verify)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def up() -> bool:
                try:
                    async with session.get(f"https://localhost:{https_port}/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectorError:
                    return False

            await wait_for(up, timeout=20, what="nginx in front of the edge")
            async with session.get(f"https://localhost:{https_port}/track/page?x=1", headers={"User-Agent": "UA/1"}) as resp:
                assert resp.status == 200
                assert "Domain=localhost" in resp.headers["Set-Cookie"]
            async with session.ws_connect(f"wss://localhost:{https_port}/wss") as ws:
                await ws.send_str(json.dumps({"service": "track", "name": "hello", "id__": 3}))
                answer = json.loads((await ws.receive(timeout=10)).data)
                assert answer["id__"] == 3 and answer["statusCode"] == 200
            async with session.get(f"http://localhost:{http_port}/track/page", allow_redirects=False) as resp:
                assert resp.status == 301 and resp.headers["Location"] == "https://localhost/track/page"
        page, hello = await seen.take(2)
    assert page["td"]["ip"] == "127.0.0.2" and page["td"]["host"] == "localhost" and page["td"]["ua"] == "UA/1"
    assert hello["name"] == "hello" and hello["td"]["ip"] == "127.0.0.2"
