"""The band command: ls, call, tail, new, help; each as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from band import App, response, wire
from band.cli.ports import free_port
from band.cli.target import nats_target
from band.errors import RPCError
from band.testing import serve


def without_nats_url() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "NATS_URL"}


async def band(*args: str, nats_url: str | None, timeout: float = 30, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m band ARGS`` with ``NATS_URL`` set to ``nats_url`` (unset when None)."""
    env = without_nats_url() if nats_url is None else {**os.environ, "NATS_URL": nats_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", *args, env=env, cwd=cwd,
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
        raise RPCError("out of stock", 500)  # a deliberate error: its message reaches the caller (an exception's never does)

    @app.expose()
    async def reserve(sku: str) -> Any:
        if sku == "taken":
            return response.error(f"{sku} is reserved already", 409, data={"sku": sku})
        return response.error("sku must be a code", 400)

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


async def test_new_writes_a_service_whose_test_passes(tmp_path: Path) -> None:
    """The test command `band new` prints, typed as printed, in the same directory, passes."""
    made = await band("new", "greeter", nats_url=None, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "greeter").iterdir()) == ["config.yml", "main.py", "test_greeter.py"]
    printed = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in made.stdout.splitlines()[1:]}
    assert printed["test it"].endswith("pytest greeter") and printed["run it"].endswith("band run greeter"), made.stdout
    result = subprocess.run(shlex.split(printed["test it"]), capture_output=True, text=True, cwd=tmp_path, timeout=120, env=without_nats_url())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    again = await band("new", "greeter", "--dir", str(tmp_path), nats_url=None)
    assert again.returncode == 2 and "exists" in again.stderr


async def test_help_names_every_command(nats_url: str) -> None:
    shown = await band("--help", nats_url=nats_url)
    for command in ("up", "run", "edge", "ls", "call", "tail", "new"):
        assert f"band {command}" in shown.stdout


async def test_ls_call_tail_fail_within_their_timeout_when_nats_is_unreachable(tmp_path: Path) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    for command in (["ls"], ["call", "shop", "price", "sku=a"], ["tail"]):
        # the subprocess deadline only catches a hang; the command's own --timeout is 1 s
        failed = await band(*command, "--nats", nowhere, "--timeout", "1", nats_url=None, cwd=tmp_path, timeout=60)
        assert failed.returncode == 1, (command, failed)
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and nowhere in lines[0] and "cannot reach NATS" in lines[0], (command, failed.stderr)
        assert failed.stdout == ""


async def test_call_exits_non_zero_when_the_method_answers_an_error(nats_url: str) -> None:
    async with serve(shop(), nats_url):
        taken = await band("call", "shop", "reserve", "sku=taken", nats_url=nats_url)
        assert taken.returncode == 1
        assert json.loads(taken.stdout) == {
            "type__": "error", "statusCode": 409, "message": "taken is reserved already", "data": {"sku": "taken"},
        }, "the answer's JSON stays on stdout"
        assert "409" in taken.stderr and "taken is reserved already" in taken.stderr
        bad = await band("call", "shop", "reserve", "sku=x", nats_url=nats_url)
        assert bad.returncode == 1 and json.loads(bad.stdout)["statusCode"] == 400
        assert "400" in bad.stderr and "sku must be a code" in bad.stderr
        raised = await band("call", "shop", "broken", nats_url=nats_url)
        assert raised.returncode == 1 and "500" in raised.stderr and "out of stock" in raised.stderr


async def test_commands_find_band_ups_nats_in_this_directory(tmp_path: Path, nats_url: str) -> None:
    """No NATS_URL, no --nats: ./.band/nats.url (what band up writes) says where NATS is."""
    (tmp_path / ".band").mkdir()
    (tmp_path / ".band" / "nats.url").write_text(nats_url + "\n")
    async with serve(shop(), nats_url):
        listed = await band("ls", nats_url=None, cwd=tmp_path)
        assert listed.returncode == 0 and "shop  (1 instance" in listed.stdout, listed
        called = await band("call", "shop", "price", "sku=a", nats_url=None, cwd=tmp_path)
        assert called.returncode == 0 and json.loads(called.stdout) == {"sku": "a", "total": 10}, called
        # NATS_URL wins over the file, --nats over both
        nowhere = f"nats://127.0.0.1:{free_port()}"
        overruled = await band("ls", "--timeout", "1", nats_url=nowhere, cwd=tmp_path)
        assert overruled.returncode == 1 and nowhere in overruled.stderr and "NATS_URL" in overruled.stderr
        flagged = await band("ls", "--nats", nats_url, nats_url=nowhere, cwd=tmp_path)
        assert flagged.returncode == 0 and "shop" in flagged.stdout


def test_nats_target_order(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert nats_target(None, {}).url == "nats://127.0.0.1:4222"
    (tmp_path / ".band").mkdir()
    (tmp_path / ".band" / "nats.url").write_text("nats://127.0.0.1:5000\n")
    assert nats_target(None, {}).url == "nats://127.0.0.1:5000"
    assert nats_target(None, {"NATS_URL": "nats://a:1,nats://b:2"}).url == "nats://a:1,nats://b:2"
    assert nats_target("nats://c:3", {"NATS_URL": "nats://a:1"}).url == "nats://c:3"


async def test_version_is_the_installed_one() -> None:
    shown = await band("--version", nats_url=None)
    assert shown.returncode == 0 and shown.stdout.strip() == f"band {metadata.version('band')}"


def test_band_cli_does_not_import_the_edge() -> None:
    code = ("import sys, band.cli; band.cli.parser(); "
            "assert not [m for m in sys.modules if m.startswith('broker.') and m != 'broker.command'], 'band.cli imported the edge'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


async def test_a_command_falling_back_to_the_default_nats_says_so(tmp_path: Path) -> None:
    """With no --nats, no NATS_URL and no ./.band/nats.url, ``band ls`` tries 127.0.0.1:4222 and says
    so, whether or not some other program's server answers there."""
    fell_back = await band("ls", "--timeout", "1", nats_url=None, cwd=tmp_path)
    assert "nats://127.0.0.1:4222, the default" in fell_back.stderr, fell_back.stderr
    (tmp_path / ".band").mkdir()
    (tmp_path / ".band" / "nats.url").write_text(f"nats://127.0.0.1:{free_port()}\n")
    written = await band("ls", "--timeout", "1", nats_url=None, cwd=tmp_path)
    assert written.returncode == 1 and "the default" not in written.stderr and "band up" in written.stderr


def test_band_demo_sends_to_the_edge_band_up_wrote_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from band._runtime.state import edge_url

    monkeypatch.chdir(tmp_path)
    assert edge_url(None, {}) == "http://127.0.0.1:8080"
    assert edge_url(None, {"PORT": "18080"}) == "http://127.0.0.1:18080"
    (tmp_path / ".band").mkdir()
    (tmp_path / ".band" / "edge.url").write_text("http://127.0.0.1:18081\n")
    assert edge_url(None, {"PORT": "18080"}) == "http://127.0.0.1:18081"
    assert edge_url("http://elsewhere:1", {}) == "http://elsewhere:1"
