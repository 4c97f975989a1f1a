"""The band command: ls, call, tail, new, help; each as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from band import App, response, wire
from band.testing import serve


async def band(*args: str, nats_url: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", *args, env={**os.environ, "NATS_URL": nats_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return subprocess.CompletedProcess(list(args), proc.returncode or 0, out.decode(), err.decode())


def shop() -> App:
    app = App("shop")

    @app.expose()
    async def price(sku: str, qty: int = 1) -> Any:
        return {"sku": sku, "total": qty * 10}

    @app.expose()
    async def echo(**params: Any) -> Any:
        return params

    @app.expose()
    async def broken(**params: Any) -> Any:
        raise RuntimeError("out of stock")

    @app.expose.handler(path="/shop/:sku", timeout=300)
    async def page(**params: Any) -> Any:
        return response.pixel()

    @app.expose.enricher(keys=["in.gen.track"])
    async def enrich(**params: Any) -> Any:
        return None

    return app


async def test_ls_and_stats(nats_url: str) -> None:
    async with serve(shop(), nats_url), serve(shop(), nats_url):
        listed = await band("ls", nats_url=nats_url)
        assert listed.returncode == 0, listed.stderr
        assert "shop  (2 instances" in listed.stdout
        assert "band.handle.in.gen.shop.page" in listed.stdout and "path=/shop/:sku" in listed.stdout
        assert "timeout=300ms" in listed.stdout and "keys=in.gen.track" in listed.stdout
        await band("call", "shop", "price", "sku=a", nats_url=nats_url)
        stats = await band("ls", "--stats", nats_url=nats_url)
        assert "requests=1 errors=0" in stats.stdout
        raw = json.loads((await band("ls", "--json", nats_url=nats_url)).stdout)
        assert {i["name"] for i in raw["info"]} == {"shop"}


async def test_call_prints_json_and_fails_with_reason(nats_url: str) -> None:
    async with serve(shop(), nats_url):
        ok = await band("call", "shop", "price", "sku=abc", "qty:=3", nats_url=nats_url)
        assert ok.returncode == 0 and json.loads(ok.stdout) == {"sku": "abc", "total": 30}
        digits = await band("call", "shop", "echo", "phone=79161234567", "tags:=[1, 2]", nats_url=nats_url)
        assert json.loads(digits.stdout) == {"phone": "79161234567", "tags": [1, 2]}, "key=value stays text"
        via_json = await band("call", "shop", "price", "--json", '{"sku": "x", "qty": 2}', nats_url=nats_url)
        assert json.loads(via_json.stdout) == {"sku": "x", "total": 20}
        failed = await band("call", "shop", "broken", nats_url=nats_url)
        assert failed.returncode == 1 and "out of stock" in failed.stderr
        missing = await band("call", "shop", "price", nats_url=nats_url)
        assert missing.returncode == 1 and "sku" in missing.stderr
        absent = await band("call", "nobody", "here", nats_url=nats_url)
        assert absent.returncode == 1 and "ServiceUnavailable" in absent.stderr
        bad = await band("call", "shop", "price", "novalue", nats_url=nats_url)
        assert bad.returncode == 2 and "key=value" in bad.stderr
        not_json = await band("call", "shop", "price", "qty:=nope", nats_url=nats_url)
        assert not_json.returncode == 2 and "not JSON" in not_json.stderr


async def test_tail_prints_events(nats_url: str, nc: Any) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "tail", "--raw", "--count", "2", env={**os.environ, "NATS_URL": nats_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 20)  # "following in.>" once subscribed
    assert b"following" in line
    await nc.publish("in.gen.track.page", wire.encode({"key": "in.gen.track.page", "id": "1"}))
    await nc.publish("in.gen.track.click", wire.encode({"key": "in.gen.track.click", "id": "2"}))
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    assert [json.loads(x)["id"] for x in out.decode().splitlines()] == ["1", "2"]


async def test_new_writes_a_service_whose_test_passes(tmp_path: Path, nats_url: str) -> None:
    made = await band("new", "greeter", "--dir", str(tmp_path), nats_url=nats_url)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "greeter").iterdir()) == ["config.yml", "main.py", "test_greeter.py"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "greeter")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    again = await band("new", "greeter", "--dir", str(tmp_path), nats_url=nats_url)
    assert again.returncode == 2 and "exists" in again.stderr


async def test_help_names_every_command(nats_url: str) -> None:
    shown = await band("--help", nats_url=nats_url)
    for command in ("up", "run", "edge", "ls", "call", "tail", "new"):
        assert f"band {command}" in shown.stdout
