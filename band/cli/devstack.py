"""``band up``: the whole pipeline on one machine, in one command.

Order: check the ports → NATS (its own nats-server on a free port, JetStream data in
``./.band/``, URL in ``./.band/nats.url``; or the one ``NATS_URL`` names) → the edge →
every service, each its own process with its output prefixed by name. "band is up"
only once the edge answers HTTP and discovery sees every service. A process that exits
during the start is reported with its last lines and the stack stops (unless
``--keep-going``). Ctrl-C stops services, then the edge, then NATS, each with SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import nats.errors
from nats.aio.client import Client

from .._core import settings as config
from .._runtime import state
from .._runtime.metrics import metrics_env
from ..errors import BandError
from . import target
from .child import Child, Probe, say
from .natsserver import NatsServer
from .parser import Commands
from .ports import port_in_use
from .spelling import spell

START_TIMEOUT_S = 60.0
T = TypeVar("T")


def register(commands: Commands) -> None:
    up = commands.add(
        "up", "[PATH...]", "the dev stack: NATS, the edge, every service", run,
        description="Start a nats-server of its own on a free port (JetStream data in ./.band/, its URL in "
        "./.band/nats.url for the other band commands run here), or use the one $NATS_URL names; then the edge "
        "on :8080 ($PORT); then every service under PATH (default examples/), each its own process with logs "
        "prefixed by name. 'band is up' once the edge answers and every service is discoverable. Ctrl-C stops "
        "all, in reverse order.",
    )
    up.add_argument("paths", nargs="*", default=["examples"], help="service directories, .py files, or folders holding them")
    up.add_argument("--port", type=int, help="edge port (default: $PORT or 8080)")
    up.add_argument("--data", default=str(state.STATE_DIR), help="where the started nats-server keeps JetStream data (default ./.band)")
    up.add_argument("--keep-going", action="store_true", help="a service that fails to start is reported; the rest keep running")
    up.add_argument("--reload", action="store_true", help="restart a service when a file in its directory changes (development)")
    up.add_argument("--start-timeout", type=float, default=START_TIMEOUT_S, help=f"seconds for everything to be ready (default {START_TIMEOUT_S:g})")


def run(args: argparse.Namespace) -> int:
    try:
        services = find_services([Path(p) for p in args.paths])
    except FileNotFoundError as exc:
        print(f"band up: {exc}", file=sys.stderr)
        return 2
    port = args.port or int(os.environ.get("PORT") or 8080)
    return asyncio.run(_up(services, port, Path(args.data), args.keep_going, args.start_timeout, args.reload))


def find_services(paths: list[Path]) -> list[Path]:
    """Service directories (with main.py) and .py files named by ``paths`` or one level below."""
    found: list[Path] = []
    for path in paths:
        if path.is_file() and path.suffix == ".py":
            found.append(path)
        elif (path / "main.py").is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(child for child in path.iterdir() if (child / "main.py").is_file())
        else:
            raise FileNotFoundError(f"{path}: no service there")
    return found


def service_name(path: Path) -> str:
    """The name the service registers under: config ``name``, else the directory/file name."""
    default = path.stem if path.is_file() else path.name
    try:
        return str(config.load(path).get("name") or default)
    except ValueError:  # a broken config: the service itself will say so when it starts
        return default


async def _health(port: int) -> tuple[int, Any]:
    """``GET /health`` on ``127.0.0.1:port``: its status and JSON body (``None`` if not JSON);
    ``(0, None)`` when nothing answers."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
                return resp.status, body
    except (TimeoutError, aiohttp.ClientError):
        return 0, None


def http_answers(port: int) -> Probe:
    """Any HTTP answer on ``127.0.0.1:port`` (``/health`` may be 503 while NATS is away)."""

    async def probe() -> bool:
        return (await _health(port))[0] > 0

    return probe


def routed_by_edge(port: int, name: str) -> Probe:
    """The edge on ``port`` routes to ``name``: its discovery (polling ``$SRV.INFO`` every
    couple of seconds) has seen it, so a hit no longer gets the built-in answer."""

    async def probe() -> bool:
        body = (await _health(port))[1]
        return isinstance(body, dict) and name in (body.get("services") or [])

    return probe


def discoverable(nc: Client, name: str) -> Probe:
    """An answer to ``$SRV.PING.<name>``: subscribed, so the edge can route to it."""

    async def probe() -> bool:
        try:
            await nc.request(f"$SRV.PING.{name}", b"", timeout=0.5)
            return True
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            return False

    return probe


def every(*probes: Probe) -> Probe:
    """Ready once each of ``probes`` is, checked in order."""

    async def probe() -> bool:
        for one in probes:
            if not await one():
                return False
        return True

    return probe


class StartFailed(BandError):
    """The stack did not come up; the message says what to look at."""


async def start(children: list[Child], width: int, keep_going: bool, timeout: float) -> list[Child]:
    """Start the edge (``children[0]``), and once it answers every service at once;
    return the children that are ready.

    Raises:
        StartFailed: one exited or stayed unready past ``timeout`` (unless ``keep_going``
            and it is not the first, the edge).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    edge, services = children[0], children[1:]
    edge.start(width)
    await _until_ready([edge], deadline, keep_going=False)
    for child in services:
        child.start(width)
    return [edge] + await _until_ready(services, deadline, keep_going)


async def _until_ready(pending: list[Child], deadline: float, keep_going: bool) -> list[Child]:
    loop = asyncio.get_running_loop()
    ready: list[Child] = []
    while pending:
        for child in list(pending):
            if child.exited:
                if not keep_going:
                    raise StartFailed(child.report())
                say(f"band up: {child.report()}", sys.stderr)
                pending.remove(child)
            elif child.ready is None or await child.ready():
                ready.append(child)
                pending.remove(child)
        if pending and loop.time() > deadline:
            names = ", ".join(c.name for c in pending)
            raise StartFailed(f"not ready in time: {names} (started, but not answering; see the lines above)")
        if pending:
            await asyncio.sleep(0.1)
    return ready


async def _nats(data: Path) -> tuple[target.Target, NatsServer | None]:
    """The NATS of the stack: the one ``NATS_URL`` names, else a nats-server of our own."""
    named = os.environ.get("NATS_URL")
    if named:
        return target.Target(named, "from NATS_URL; unset it to have band up start its own"), None
    written = target.nats_target(env={})
    if written.source != target.DEFAULT_SOURCE:  # ./.band/nats.url exists: is its band up still running?
        try:
            nc = await target.reach(written, "band-up", 1.0)
        except target.Unreachable:
            pass  # left behind by a band up that was killed
        else:
            await nc.close()
            raise StartFailed(f"another band up runs in this directory (NATS at {written.url}, ./{state.URL_FILE}); stop it first")
    server = NatsServer(store_dir=data / "nats", log_file=data / "nats.log", die_with_parent=True)
    try:
        server.start()  # in the main thread: the parent-death signal follows the starting thread
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise StartFailed(f"nats-server did not start: {exc} (its log: {data / 'nats.log'})") from None
    state.URL_FILE.parent.mkdir(parents=True, exist_ok=True)
    state.URL_FILE.write_text(server.url + "\n", encoding="utf-8")
    return target.Target(server.url, f"started nats-server with JetStream data in {data / 'nats'}; URL in ./{state.URL_FILE}"), server


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``work``'s result; ``None`` when ``stop`` is set first (``work`` is cancelled then),
    so a Ctrl-C or SIGTERM while the stack starts stops it at once."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()


def store_http_port() -> int:
    """The port of the store's ClickHouse interface (``STORE_HTTP_PORT``, default 8123; 0: off)."""
    value = os.environ.get("STORE_HTTP_PORT")
    return int(value) if value and value.isdigit() else (0 if value else 8123)


def ports(edge: int, services: int) -> list[int]:
    """Every port the stack will bind: the edge's, and each service's /metrics (METRICS_PORT + i)."""
    return [edge] + [int(metrics_env(i)["METRICS_PORT"]) for i in range(services) if metrics_env(i)]


async def _up(paths: list[Path], port: int, data: Path, keep_going: bool, timeout: float, reload: bool = False) -> int:
    for taken in ports(port, len(paths)):
        if port_in_use(taken, os.environ.get("HOST") or "0.0.0.0"):
            what = "--port" if taken == port else "METRICS_PORT"
            print(f"band up: port {taken} is in use (another band up, or another program); stop it or choose another {what}", file=sys.stderr)
            return 1
    clickhouse = store_http_port()
    if clickhouse and port_in_use(clickhouse, os.environ.get("STORE_HTTP_HOST") or "127.0.0.1"):
        print(f"band up: port {clickhouse} (the store's ClickHouse interface) is in use (another band up, or a ClickHouse "
              "server); stop it, or set STORE_HTTP_PORT to another port (0: no interface)", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server: NatsServer | None = None
    nc: Client | None = None
    running: list[Child] = []
    watcher: asyncio.Future[None] | None = None
    try:
        where, server = await _nats(data)
        say(f"NATS at {where.url} ({where.source})")
        nc = await _unless_stopped(target.reach(where, "band-up", 10.0), stop)
        if nc is None:  # Ctrl-C while NATS does not answer yet
            say("stopping…")
            return 0
        env = {**os.environ, "NATS_URL": where.url, "PYTHONUNBUFFERED": "1"}
        edge = Child("edge", [sys.executable, "-m", "band", "edge", "--port", str(port)], {**env, "PORT": str(port)}, http_answers(port))
        services = [(service_name(p), p) for p in paths]
        children = [edge] + [
            Child(name, [sys.executable, "-m", "band", "run", str(p)], {**env, **metrics_env(i)}, every(discoverable(nc, name), routed_by_edge(port, name)))
            for i, (name, p) in enumerate(services)
        ]
        store_env = {**env, "STORE_DIR": env.get("STORE_DIR") or str(data / "store")}  # every event into ClickHouse
        children.append(
            Child("store", [sys.executable, "-m", "band", "store"], store_env, every(discoverable(nc, "store"), routed_by_edge(port, "store")))
        )  # last: children[1:] pair with services
        running = children  # stopped on the way out, whatever happens below
        width = max(len(c.name) for c in children)
        if reload:  # a change restarts only its own service (watched from the start: no save is missed)
            from .reload import Reloader

            watcher = asyncio.ensure_future(  # noqa: RUF006 - kept in watcher: cancelled and awaited in the finally below
                Reloader([(p, c) for (_, p), c in zip(services, children[1:], strict=False)], width).run(stop))
        up = await _unless_stopped(start(children, width, keep_going, timeout), stop)
        if up is None:  # Ctrl-C while starting
            say("\nstopping…")
            return 0
        band = spell("band")
        from ..panel.uphook import panel_beside

        state.EDGE_FILE.parent.mkdir(parents=True, exist_ok=True)
        state.EDGE_FILE.write_text(f"http://127.0.0.1:{port}\n", encoding="utf-8")  # for band demo run here
        panel_port = int(os.environ.get("PANEL_PORT") or 8081)
        async with panel_beside(running, width, data, env, port, panel_port, lambda n, a, e: Child(n, a, e, http_answers(panel_port))) as panel:
            sql = (
                f"  clickhouse: http://{os.environ.get('STORE_HTTP_HOST') or '127.0.0.1'}:{clickhouse}/ (read-only, any ClickHouse client)\n"
                if clickhouse
                else ""
            )
            say(f"\nband is up\n  NATS: {where.url}\n  edge: http://127.0.0.1:{port}/\n  panel: {panel}\n{sql}"
                f"  services: {', '.join(sorted(c.name for c in up[1:])) or 'none'}\n"
                f"In another terminal here: {band} ls, {band} tail, {band} call SERVICE METHOD k=v. Ctrl-C stops everything.\n")
            await stop.wait()
            say("\nstopping…")
        return 0
    except (StartFailed, target.Unreachable) as exc:
        say(f"band up: {exc}", sys.stderr)
        say("stopping…")
        return 1
    finally:
        if watcher is not None:  # no restart races the stop below
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        # services first (the edge stops routing to them), then the edge, then NATS
        await asyncio.gather(*(asyncio.to_thread(c.stop) for c in running[1:]))
        if running:
            await asyncio.to_thread(running[0].stop)
        if nc is not None:
            await nc.close()
        state.EDGE_FILE.unlink(missing_ok=True)
        if server is not None:
            await asyncio.to_thread(server.stop)
            state.URL_FILE.unlink(missing_ok=True)


__all__ = [
    "START_TIMEOUT_S",
    "StartFailed",
    "discoverable",
    "every",
    "find_services",
    "http_answers",
    "ports",
    "register",
    "routed_by_edge",
    "run",
    "service_name",
    "start",
]
