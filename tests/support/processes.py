"""Helpers for the fault, fuzz and security tests: real processes, real sockets, real NATS.

Nothing here is mocked. An edge is ``python -m broker`` on a free port, a service is
``python -m band run DIR``; both log to a file (a pipe nobody reads would fill up and
stall the process under load). Events are counted by reading the JetStream stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from band import wire
from band.cli import processes
from band.cli.ports import free_port

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=20)

# An edge that notices services fast: discovery polls every 0.3 s.
EDGE_ENV = {
    "EDGE_DISCOVERY_INTERVAL_S": "0.3",
    "EDGE_DISCOVERY_WINDOW_S": "0.1",
    "EDGE_COOKIE_SECURE": "false",
}


@dataclass
class Proc:
    """A child process whose stdout+stderr go to ``log``."""

    popen: subprocess.Popen[bytes]
    log: Path
    what: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL this one process (by its pid) and reap it."""
        if self.alive():
            self.popen.kill()
        self.popen.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, then SIGKILL if it does not exit; the exit code."""
        return processes.stop(self.popen, timeout)


def memory(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of ``pid``, in bytes, from /proc."""
    out = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _spawn(args: list[str], log: Path, what: str, env: dict[str, str]) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
    return Proc(popen, log, what)


def start_edge(
    nats_url: str, logdir: Path, port: int | None = None, name: str = "edge", args: Iterable[str] = (), **env: str
) -> tuple[Proc, int]:
    """``python -m broker [args]`` on 127.0.0.1:<free port>; returns it and the port."""
    port = port or free_port()
    full = {**EDGE_ENV, "NATS_URL": nats_url, "LOG_LEVEL": "WARNING", **env}
    args = [sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port), *args]
    return _spawn(args, logdir / f"{name}.log", f"edge {name}", full), port


def write_service(root: Path, name: str, code: str, config: str = "") -> Path:
    """A service directory ``root/name`` with ``main.py`` (dedented) and ``config.yml``."""
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "main.py").write_text(textwrap.dedent(code))
    (path / "config.yml").write_text(textwrap.dedent(config))
    return path


def start_service(path: Path, nats_url: str, logname: str | None = None, **env: str) -> Proc:
    """``python -m band run PATH`` with JSON logs into ``PATH/../<logname>.log``."""
    log = path.parent / f"{logname or path.name}.log"
    full = {"NATS_URL": nats_url, "JSON_LOGS": "1", **env}
    return _spawn([sys.executable, "-m", "band", "run", str(path)], log, f"service {path.name}", full)


async def http_status(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
            await resp.read()
            return resp.status
    except (TimeoutError, aiohttp.ClientError):
        return 0


async def edge_healthy(session: aiohttp.ClientSession, base: str) -> bool:
    return await http_status(session, f"{base}/health") == 200


async def metric_value(session: aiohttp.ClientSession, base: str, name: str, labels: dict[str, str] | None = None) -> float:
    """One sample of the edge's ``/metrics`` (0 when absent)."""
    async with session.get(f"{base}/metrics") as resp:
        text = await resp.text()
    want = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series == (f"{name}{{{want}}}" if want else name):
            return float(value)
    return 0.0


async def stream_ids(js: Any, subject: str, batch: int = 500) -> Counter[str]:
    """How many times each message ``id`` is stored in BAND_EVENTS under ``subject``.

    Reads with an ephemeral pull consumer from the first message; also checks that
    ``Nats-Msg-Id`` equals the body's ``id`` (what JetStream de-duplicates on). Big
    messages want a small ``batch``: a fetch of hundreds of 1 MB messages can outlast
    the server's write deadline on a busy machine, and the server then drops the client
    as a slow consumer.
    """
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0)
    psub = await js.pull_subscribe(subject, stream=wire.STREAM, config=config)
    try:
        info = await psub.consumer_info()
        left = info.num_pending
        ids: Counter[str] = Counter()
        while left > 0:
            try:
                msgs = await psub.fetch(min(batch, left), timeout=10)
            except nats.errors.TimeoutError:
                raise AssertionError(f"stream read stalled with {left} messages left") from None
            for msg in msgs:
                ident = json.loads(msg.data)["id"]
                assert msg.headers and msg.headers.get(wire.MSG_ID_HEADER) == ident
                ids[ident] += 1
            left -= len(msgs)
        return ids
    finally:
        await psub.unsubscribe()


# --- load --------------------------------------------------------------------
@dataclass
class Answer:
    path: str
    status: int  # 0: no HTTP answer (connection error / client timeout)
    body: bytes
    seconds: float
    phase: str
    error: str = ""
    done_at: float = field(default_factory=time.monotonic)  # when the answer was complete

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Load:
    """``workers`` clients sending GETs round-robin over ``paths`` until stopped or ``limit``."""

    session: aiohttp.ClientSession
    base: str
    paths: list[str]
    workers: int = 8
    limit: int = 5000
    answers: list[Answer] = field(default_factory=list)
    phase: str = "start"
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _sent: int = 0

    def start(self) -> Load:
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]
        return self

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def finished(self, timeout: float) -> None:
        """Wait for ``limit`` hits (bounded)."""
        done, _ = await asyncio.wait(self._tasks, timeout=timeout)
        if len(done) != len(self._tasks):
            await self.stop()
            raise AssertionError(f"load did not finish {self.limit} hits in {timeout}s ({len(self.answers)} answered)")
        for task in done:
            task.result()

    def count(self, phase: str | None = None, ok: bool | None = None) -> int:
        return sum(
            1 for a in self.answers
            if (phase is None or a.phase == phase) and (ok is None or (200 <= a.status < 300) == ok)
        )

    async def _worker(self, index: int) -> None:
        while not self._stop.is_set() and self._sent < self.limit:
            path = self.paths[self._sent % len(self.paths)]
            self._sent += 1
            phase = self.phase
            started = time.perf_counter()
            try:
                async with self.session.get(self.base + path, timeout=HTTP_TIMEOUT, allow_redirects=False) as resp:
                    body = await resp.read()
                    answer = Answer(path, resp.status, body, time.perf_counter() - started, phase)
            except (TimeoutError, aiohttp.ClientError) as exc:
                answer = Answer(path, 0, b"", time.perf_counter() - started, phase, repr(exc))
            self.answers.append(answer)
            if not 200 <= answer.status < 300:
                await asyncio.sleep(0.01)  # pace the error path; not a synchronisation


# --- raw HTTP ----------------------------------------------------------------------
@dataclass
class RawAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def raw_http(port: int, target: str | bytes, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b"") -> RawAnswer:
    """One request as raw bytes on a fresh socket (no client-side normalisation),
    the answer parsed strictly by ``http.client`` (a malformed answer raises)."""
    import http.client
    import socket

    path = target if isinstance(target, bytes) else target.encode()
    lines = [method.encode() + b" " + path + b" HTTP/1.1", b"Host: edge.test"]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in (headers or {}).items()]
    lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        return RawAnswer(resp.status, resp.getheaders(), resp.read())
