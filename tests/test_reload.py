"""``--reload``: real processes, real file changes; waits have deadlines, nothing is timed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from support.fakes import unique
from support.poll import wait_for

from band import wire
from band.cli.ports import free_port
from band.cli.reload import syntax_error

pytest.importorskip("watchfiles")


def write_service(folder: Path, version: Any) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "main.py").write_text(textwrap.dedent(f"""
        import os
        from band import expose

        @expose()
        async def version() -> dict:
            return {{"version": {version!r}, "pid": os.getpid()}}
    """))


class Output:
    """A child's stdout, read line by line in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self.reader.start()

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


@pytest.fixture
def spawn(nats_url: str) -> Iterator[Any]:
    procs: list[tuple[subprocess.Popen[str], Output]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], Output]:
        env = {**os.environ, "NATS_URL": nats_url, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "band", *args], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = Output(proc)
        procs.append((proc, output))
        return proc, output

    yield start
    for proc, output in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        output.reader.join(10)  # EOF once the child is gone; then its pipe can be closed
        if proc.stdout is not None:
            proc.stdout.close()


async def version(nc: Any, name: str) -> dict[str, Any] | None:
    try:
        reply = await nc.request(wire.rpc_subject(name, "version"), b"{}", timeout=0.5)
    except Exception:
        return None
    if wire.error_from_headers(reply.headers):
        return None
    value = wire.decode(reply.data)
    return value["data"] if isinstance(value, dict) and "data" in value else None


async def answers(nc: Any, name: str, wanted: Any) -> bool:
    found = await version(nc, name)
    return found is not None and found["version"] == wanted


async def test_run_reload_restarts_on_change_and_keeps_running_on_a_syntax_error(tmp_path: Path, nats_url: str, spawn: Any) -> None:
    name = unique("reloaded")
    folder = tmp_path / name
    write_service(folder, 1)
    proc, out = spawn("run", "--reload", str(folder))
    nc = await nats.connect(nats_url)
    try:
        await wait_for(lambda: answers(nc, name, 1), timeout=20, what="version 1 answers")
        await wait_for(lambda: out.has("watching"), timeout=10, what="the watcher started")
        first = await version(nc, name)
        assert first is not None

        write_service(folder, 2)
        await wait_for(lambda: answers(nc, name, 2), timeout=20, what="version 2 after the change")
        second = await version(nc, name)
        assert second is not None and second["pid"] != first["pid"]

        (folder / "main.py").write_text("def broken(:\n")
        await wait_for(lambda: out.has("not reloaded") and out.has("SyntaxError"), timeout=20, what="the syntax error printed")
        still = await version(nc, name)
        assert still == second, "the running process stays after a syntax error"

        write_service(folder, 3)
        await wait_for(lambda: answers(nc, name, 3), timeout=20, what="version 3 once the file is fixed")
    finally:
        await nc.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


async def test_up_reload_restarts_only_the_changed_service(tmp_path: Path, nats_url: str, spawn: Any) -> None:
    one, two = unique("one"), unique("two")
    write_service(tmp_path / one, "a")
    write_service(tmp_path / two, "a")
    proc, out = spawn("up", "--reload", "--port", str(free_port()), str(tmp_path / one), str(tmp_path / two))
    nc = await nats.connect(nats_url)
    try:
        await wait_for(lambda: answers(nc, one, "a"), timeout=30, what=f"{one} answers")
        await wait_for(lambda: answers(nc, two, "a"), timeout=30, what=f"{two} answers")
        before = await version(nc, two)
        write_service(tmp_path / one, "b")
        await wait_for(lambda: answers(nc, one, "b"), timeout=20, what=f"{one} reloaded")
        assert await version(nc, two) == before, "the other service was not restarted"
    finally:
        await nc.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, "".join(out.lines)


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    write_service(tmp_path / "svc", 1)
    assert syntax_error(tmp_path / "svc") is None
    (tmp_path / "svc" / "helpers.py").write_text("x = (\n")
    problem = syntax_error(tmp_path / "svc")
    assert problem is not None and "helpers.py" in problem and "SyntaxError" in problem
