"""Helpers of the web-SDK tests: events as they arrive on NATS, a static site on its own port."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from nats.aio.client import Client
from nats.aio.msg import Msg

from band._runtime.connect import flush
from support.poll import wait_for


@dataclass
class Arrivals:
    """Every event published on a subject (the JetStream publish is seen by core subscribers too)."""

    events: list[dict[str, Any]] = field(default_factory=list)

    async def on(self, msg: Msg) -> None:
        self.events.append(json.loads(msg.data))

    async def take(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        await wait_for(lambda: len(self.events) >= n, timeout=timeout, what=f"{n} events (got {len(self.events)})")
        return self.events[:n]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["name"] == name]


@contextlib.asynccontextmanager
async def arrivals(nc: Client, subject: str) -> AsyncIterator[Arrivals]:
    seen = Arrivals()
    sub = await nc.subscribe(subject, cb=seen.on)
    await flush(nc)
    try:
        yield seen
    finally:
        await sub.unsubscribe()


@contextlib.asynccontextmanager
async def site(pages: dict[str, str]) -> AsyncIterator[str]:
    """A plain HTTP site on 127.0.0.1:<free port> serving ``pages`` (path → HTML); yields its origin."""

    async def page(request: web.Request) -> web.Response:
        html = pages.get(request.path)
        if html is None:
            return web.Response(status=404)
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def make_edge_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private CA and a certificate for localhost/127.0.0.1, made by deploy/make-certs.sh."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    out = tmp_path_factory.mktemp("edge-certs")
    done = subprocess.run(["sh", str(DEPLOY / "make-certs.sh"), str(out), "localhost", "127.0.0.1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out
