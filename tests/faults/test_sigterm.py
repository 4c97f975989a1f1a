"""Every process exits 0 within 2 s of SIGTERM, in every state.

One test per (process, state): ``band run`` with a durable listener, ``band store``,
``band panel`` and ``band edge`` run as real processes against a nats-server of the
test's own, are brought into the state, and get a real SIGTERM. They must exit with
code 0 within ``EXIT_S`` of the signal (measured by a thread waiting on the process,
so the test's own loop cannot delay it) and print no traceback.

States: NATS never reachable (connecting), NATS SIGKILLed and not back (reconnecting),
idle, busy (work in flight that ends within the drain limit), a WebSocket open, and
for the store a statement still running in chDB when the drain limit is reached.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.errors
import nats.js.errors
import pytest
from support.poll import wait_for
from support.processes import Load, Proc, _spawn, metric_value, start_edge, write_service

from band import wire
from band._runtime.cancel import raise_if_cancelling
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port

pytestmark = pytest.mark.slow

EXIT_S = 2.0  # the promise
READY_S = 60.0  # starting on a shared machine (the store opens chDB)
TOKEN = "sigterm-test-token-0123456789"
LISTENER = """
import asyncio
import os
from band import expose

def note(what):
    with open(os.environ["SIG_RECORD"], "a") as out:
        out.write(what + "\\n")

@expose.listener(durable=True)
async def keep(**message):
    note("started")
    await asyncio.sleep(0.3)  # in flight at the signal, well within the drain limit
    note("done")
"""
LONG_QUERY = "SELECT sleepEachRow(1) FROM numbers(100) SETTINGS max_block_size = 1"  # 100 s, no CPU


@dataclass
class Subject:
    """One process under test, the server it talks to and how to reach it."""

    kind: str
    proc: Proc
    server: NatsServer
    port: int = 0
    tmp: Path = Path(".")
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _nowhere() -> str:
    return f"nats://127.0.0.1:{free_port()}"


def _start(kind: str, tmp: Path, url: str, **env: str) -> tuple[Proc, int]:
    """``kind`` as ``band`` starts it, logging to ``tmp/<kind>.log``."""
    port = free_port()
    log = tmp / f"{kind}.log"
    base = {"NATS_URL": url, **env}
    if kind == "run":
        service = write_service(tmp, "sigkeep", LISTENER)
        return _spawn([sys.executable, "-m", "band", "run", str(service)], log, "band run", {"SIG_RECORD": str(tmp / "record"), **base}), 0
    if kind == "store":
        # a batch is written every 3 s: one is in hand whenever NATS goes or the signal comes
        return _spawn([sys.executable, "-m", "band", "store"], log, "band store",
                      {"STORE_DIR": str(tmp / "store"), "METRICS_PORT": str(port), "STORE_BATCH_SECONDS": "3", **base}), port
    if kind == "panel":
        args = [sys.executable, "-m", "band", "panel", "--port", str(port), "--nats", url]
        return _spawn(args, log, "band panel", {"PANEL_TOKEN": TOKEN, "PANEL_EDGE_URLS": "http://127.0.0.1:9", **env}), port
    assert kind == "edge"
    return start_edge(url, tmp, port=port, LOG_LEVEL="INFO", **env)


# the edge says "ready" once NATS is up and "listening" once its port is bound, in either order: both are waited for
READY = {"run": "service started", "store": "store: writing events", "panel": "band panel on", "edge": "band edge listening"}


async def _consumer_made(nc: Any, durable: str) -> bool:
    try:
        await nc.jetstream().consumer_info(wire.STREAM, durable)
        return True
    except (nats.errors.Error, nats.js.errors.Error):
        return False


async def ready(subject: Subject, nc: Any) -> None:
    await wait_for(lambda: READY[subject.kind] in subject.proc.text(), READY_S, f"{subject.kind} ready", procs=[subject.proc])
    if subject.kind == "edge":
        await wait_for(lambda: "band edge ready" in subject.proc.text(), READY_S, "the edge's NATS side", procs=[subject.proc])
    if subject.kind == "store":  # its writer pulls from here on
        await wait_for(lambda: _consumer_made(nc, "store_writer"), READY_S, "the store's consumer", procs=[subject.proc])


async def sigterm(subject: Subject, bound: float = EXIT_S) -> float:
    """SIGTERM; the seconds until the process exited, asserting code 0, within ``bound``, no traceback."""
    proc = subject.proc
    assert proc.alive(), f"{proc.what} exited before the signal:\n{proc.text()[-3000:]}"
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(proc.popen.wait, bound + 30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{proc.what} still runs {bound + 30:.0f} s after SIGTERM:\n{proc.text()[-3000:]}") from None
    took = time.monotonic() - started
    assert code == 0, f"{proc.what} exited with {code}:\n{proc.text()[-3000:]}"
    assert took <= bound, f"{proc.what} took {took:.2f} s to exit after SIGTERM (promised {bound} s):\n{proc.text()[-3000:]}"
    assert "Traceback" not in proc.text(), proc.text()[-3000:]
    return took


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield http


# --- the states ---------------------------------------------------------------------------
async def never_connected(kind: str, tmp: Path, session: aiohttp.ClientSession) -> None:
    proc, _ = _start(kind, tmp, _nowhere())
    try:
        await wait_for(lambda: "ConnectionRefusedError" in proc.text(), READY_S, "connect attempts", procs=[proc])
        await sigterm(Subject(kind, proc, NatsServer(tmp / "unused")))
    finally:
        proc.kill()


async def nats_lost(subject: Subject, nc: Any, session: aiohttp.ClientSession) -> None:
    """The server SIGKILLed under a process at work: what it finishes next (a listener's
    acks, a stored batch's acks) waits in its client for a server that is not back."""
    if subject.kind in ("run", "store"):
        await _working(subject, nc)
        await _stop_tasks(subject)
    subject.server.kill()
    await wait_for(lambda: "NATS disconnected" in subject.proc.text(), 30, "NATS seen gone", procs=[subject.proc])
    if subject.kind in ("run", "store"):
        before = await _finished(subject, session)  # counted once the loss is known: what comes next came after it
        await wait_for(lambda: _more(_finished(subject, session), before), 30, "work finished after the loss", procs=[subject.proc])
    await sigterm(subject)


async def _working(subject: Subject, nc: Any) -> None:
    """Events flowing into ``run``'s listener or the store."""
    subject.tasks.append(asyncio.create_task(_publish_events(nc)))
    if subject.kind == "run":
        await wait_for(lambda: _notes(subject, "started") >= 3, 30, "events in the listener", procs=[subject.proc])
    else:
        await wait_for(lambda: _delivered(nc, "store_writer", 200), 30, "events in the store", procs=[subject.proc])


async def _finished(subject: Subject, session: aiohttp.ClientSession) -> float:
    """Events the listener finished, or rows the store wrote: each is acked right after."""
    if subject.kind == "run":
        return _notes(subject, "done")
    async with session.get(f"{subject.base}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith("band_store_rows_total{"))


async def _stop_tasks(subject: Subject) -> None:
    for task in subject.tasks:
        task.cancel()
    await asyncio.gather(*subject.tasks, return_exceptions=True)
    subject.tasks.clear()


async def _more(now: Awaitable[float], than: float) -> bool:
    return await now > than


def _notes(subject: Subject, what: str) -> int:
    record = subject.tmp / "record"
    return record.read_text().split().count(what) if record.exists() else 0


async def idle(subject: Subject, nc: Any, session: aiohttp.ClientSession) -> None:
    await sigterm(subject)


async def busy(subject: Subject, nc: Any, session: aiohttp.ClientSession) -> None:
    """Work in flight at the signal, each piece far shorter than the drain limit."""
    if subject.kind in ("run", "store"):
        await _working(subject, nc)
        await sigterm(subject)
        return
    paths = ["/api/overview", "/api/services", "/api/jetstream"] if subject.kind == "panel" else ["/track/page"]
    load = Load(session, subject.base, paths, workers=8, limit=1_000_000).start()
    try:
        await wait_for(lambda: load.count(ok=True) >= 30, 30, "requests answered", procs=[subject.proc])
        await sigterm(subject)
    finally:
        await load.stop()


async def websocket_open(subject: Subject, nc: Any, session: aiohttp.ClientSession) -> None:
    """A live socket (the panel's live tail, the edge's /wss) gets a close frame, not a wait."""
    path = "/api/tail" if subject.kind == "panel" else "/wss?uid=6462464730849083392"
    async with session.ws_connect(subject.base + path) as ws:
        if subject.kind == "panel":
            hello = await ws.receive_json(timeout=10)
            assert hello["type"] == "hello"
        await sigterm(subject)
        closing = await ws.receive(timeout=10)
        while closing.type == aiohttp.WSMsgType.TEXT:  # the tail's once-a-second counts may come first
            closing = await ws.receive(timeout=10)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == aiohttp.WSCloseCode.GOING_AWAY, closing


async def _client(url: str) -> Any:
    """The test's own client; it outlives the server's SIGKILL quietly."""

    async def quiet(exc: Exception) -> None:
        pass

    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=quiet)


async def _publish_events(nc: Any) -> None:
    """Events at about 500/s until cancelled (a publish may swallow the cancel: checked each round)."""
    js = nc.jetstream()
    n = 0
    while True:
        raise_if_cancelling()
        n += 1
        body = {"id": str(6_400_000_000_000_000_000 + n), "key": "in.gen.track.page", "uid": "1", "data": {"n": n}}
        try:
            await js.publish("in.gen.track.page", wire.encode(body), timeout=2)
        except (nats.errors.Error, nats.js.errors.Error):
            pass
        await asyncio.sleep(0.002)


async def _delivered(nc: Any, durable: str, at_least: int) -> bool:
    try:
        info = await nc.jetstream().consumer_info(wire.STREAM, durable)
    except (nats.errors.Error, nats.js.errors.Error):
        return False
    return bool(info.delivered.stream_seq >= at_least)


STATES: dict[str, Callable[[Subject, Any, aiohttp.ClientSession], Awaitable[None]]] = {
    "nats-lost": nats_lost,
    "idle": idle,
    "busy": busy,
    "websocket": websocket_open,
}
CASES = [(kind, state) for kind in ("run", "store", "panel", "edge") for state in STATES
         if state != "websocket" or kind in ("panel", "edge")]


@pytest.mark.parametrize("kind", ["run", "store", "panel", "edge"])
async def test_sigterm_before_nats_ever_answered(kind: str, tmp_path: Path, session: aiohttp.ClientSession) -> None:
    await never_connected(kind, tmp_path, session)


@pytest.mark.parametrize(("kind", "state"), CASES)
async def test_sigterm_exits_0_within_2_s(kind: str, state: str, tmp_path: Path, session: aiohttp.ClientSession) -> None:
    server = NatsServer(store_dir=tmp_path / "js").start()
    proc, port = _start(kind, tmp_path, server.url)
    subject = Subject(kind, proc, server, port, tmp_path)
    nc = await _client(server.url)
    try:
        await ready(subject, nc)
        await STATES[state](subject, nc, session)
    finally:
        await _stop_tasks(subject)
        proc.kill()
        await nc.close()
        server.stop()


async def test_store_with_a_statement_running_in_chdb_exits_within_the_drain_limit(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A query still running when the drain limit is reached is given up: chDB's process
    is stopped under it instead of the store waiting for it (here 100 s)."""
    drain = 0.5
    with NatsServer(store_dir=tmp_path / "js") as server:
        proc, port = _start("store", tmp_path, server.url, BAND_DRAIN_TIMEOUT=str(drain))
        subject = Subject("store", proc, server, port, tmp_path)
        nc = await _client(server.url)
        try:
            await ready(subject, nc)
            query = asyncio.ensure_future(nc.request(wire.rpc_subject("store", "query"), wire.encode({"sql": LONG_QUERY}), timeout=120))
            await wait_for(lambda: _inflight(session, subject.base), 30, "the query in the store", procs=[proc])
            await sigterm(subject, drain + EXIT_S)
            query.cancel()
        finally:
            proc.kill()
            await nc.close()


async def _inflight(session: aiohttp.ClientSession, base: str) -> bool:
    try:
        return await metric_value(session, base, "band_service_inflight", {"service": "store"}) >= 1
    except (aiohttp.ClientError, ValueError):
        return False


async def test_band_up_stops_while_the_nats_it_was_told_to_use_does_not_answer(tmp_path: Path) -> None:
    """``band up`` with ``NATS_URL`` naming a server that is not there waits up to 10 s
    for it; a SIGTERM meanwhile stops it at once, with 0."""
    service = write_service(tmp_path / "services", "idle", "from band import expose\n")
    env = {"NATS_URL": _nowhere(), "PORT": str(free_port())}
    proc = _spawn([sys.executable, "-m", "band", "up", str(service.parent), "--port", env["PORT"]], tmp_path / "up.log", "band up", env)
    try:
        await wait_for(lambda: "NATS at" in proc.text(), READY_S, "band up checking NATS", procs=[proc])
        await sigterm(Subject("up", proc, NatsServer(tmp_path / "unused")))
    finally:
        proc.kill()
