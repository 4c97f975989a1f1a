"""deploy/nats-tls.conf (nats.conf + a tls block) with a CA and server certificate
made by deploy/make-certs.sh: band services talk over TLS when given NATS_CA; a
plain-text client gets nothing (issue 5 "Nobody let in")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.deploy import DEPLOY, check_conf, client, conf_server, password_env, url

from band import App
from band._core.rpc import RPC
from band._runtime.connect import connect
from band.cli.natsserver import NatsServer
from band.testing import serve

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or not (DEPLOY / "nats-tls.conf").exists(), reason="needs openssl and deploy/nats-tls.conf"
)

FILES = ("deploy/nats-tls.conf", "nats.conf")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    done = subprocess.run(["sh", str(DEPLOY / "make-certs.sh"), str(out), "localhost", "127.0.0.1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def env(certs: Path) -> dict[str, str]:
    return {**password_env(), "NATS_TLS_CERT": str(certs / "server.pem"), "NATS_TLS_KEY": str(certs / "server-key.pem")}


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with conf_server(tmp_path_factory.mktemp("tls"), env, files=FILES) as srv:
        yield srv


def test_tls_conf_is_valid(env: dict[str, str]) -> None:
    done = check_conf(DEPLOY / "nats-tls.conf", env)
    assert done.returncode == 0, done.stderr


async def test_rpc_round_trip_over_tls(server: NatsServer, env: dict[str, str], certs: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_CA", str(certs / "ca.pem"))
    crm = App("crm")

    @crm.expose()
    async def by_phone(phone: str) -> Any:
        return {"name": "Ann", "phone": phone}

    async with serve(crm, url("svc_crm", env, server.port, scheme="tls")):
        caller = await connect(url("svc_calltracking", env, server.port, scheme="tls"), name="calltracking")
        try:
            assert caller.connected_url is not None and caller.connected_url.scheme == "tls"
            answer = await RPC(lambda: caller).request("crm", "by_phone", phone="79161234567")
            assert answer == {"name": "Ann", "phone": "79161234567"}
        finally:
            await caller.close()


async def test_plain_text_client_is_refused(server: NatsServer, env: dict[str, str]) -> None:
    """The server announces tls_required and drops a client that speaks plain text."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        info = await asyncio.wait_for(reader.readline(), 5)
        assert info.startswith(b"INFO ")
        assert json.loads(info[5:])["tls_required"] is True
        user_url = url("edge", env, server.port)
        password = user_url.split(":")[2].split("@")[0]
        writer.write(b'CONNECT {"verbose":false,"user":"edge","pass":"' + password.encode() + b'"}\r\nPING\r\n')
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 10)  # until the server closes
        assert b"PONG" not in rest and b"+OK" not in rest
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    # nats-py dialing nats:// upgrades to TLS itself and then cannot verify the server
    with pytest.raises(ssl.SSLError):
        nc = await client(url("edge", env, server.port))
        await nc.close()


async def test_tls_client_without_the_ca_is_refused(server: NatsServer, env: dict[str, str]) -> None:
    """Verification is on: a client that does not trust the private CA cannot connect."""
    with pytest.raises(ssl.SSLError):
        nc = await client(url("edge", env, server.port, scheme="tls"), tls=ssl.create_default_context())
        await nc.close()
