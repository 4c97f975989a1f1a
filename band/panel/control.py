"""Control of ``band up``'s processes: a small HTTP API on a unix socket, and its client.

``band up`` serves it (``./.band/control.sock``, owner-only) and the panel calls it, so
restart/stop/start work only for processes that ``band up`` itself started, on this
machine, and nothing of it is reachable over the network or NATS. Each process keeps
its last log lines for the panel to show.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

ACTIONS = ("restart", "stop", "start")
SHOWN_LINES = 50  # of each process's last output lines


class Supervised(Protocol):
    """What ``band up`` keeps per process: a name, the process, its last output lines,
    and ``start``/``stop`` (plain or async functions: either is awaited properly)."""

    name: str
    last: Any  # a deque of the last output lines
    process: Any  # asyncio.subprocess.Process or subprocess.Popen

    def start(self, width: int) -> Any: ...
    def stop(self) -> Any: ...


async def start_child(child: Supervised, width: int) -> None:
    """On the loop's own thread, even when ``start`` blocks: the parent-death signal of a
    child follows the thread that started it, and a worker thread would end soon."""
    started = child.start(width)
    if inspect.isawaitable(started):
        await started


async def _stop(child: Supervised) -> None:
    if inspect.iscoroutinefunction(child.stop):
        await child.stop()
    else:  # a blocking stop waits for the process: off the loop
        await asyncio.to_thread(child.stop)


def _returncode(process: Any) -> int | None:
    poll = getattr(process, "poll", None)
    return poll() if callable(poll) else process.returncode  # type: ignore[no-any-return]


def _started(pid: int) -> float | None:
    try:
        return os.stat(f"/proc/{pid}").st_ctime
    except OSError:
        return None


def describe(child: Supervised, controllable: bool, restarts: int = 0) -> dict[str, Any]:
    proc = child.process
    code = None if proc is None else _returncode(proc)
    running = proc is not None and code is None
    started = _started(proc.pid) if running else None
    return {
        "name": child.name,
        "state": "running" if running else ("stopped" if proc is None or code in (0, -15) else "exited"),
        "pid": proc.pid if running else None,
        "exit_code": None if running else code,
        "uptime_s": round(time.time() - started, 1) if started else None,
        "restarts": restarts,
        "controllable": controllable,
        "lines": list(child.last)[-SHOWN_LINES:],
    }


def control_app(children: Sequence[Supervised], width: int, fixed: Sequence[str] = ("panel",)) -> web.Application:
    """The API: ``GET /children`` and ``POST /children/<name>/<restart|stop|start>``.

    Processes named in ``fixed`` (the panel itself) are listed but not controlled: the
    panel would otherwise cut off its own answer.
    """
    by_name = {c.name: c for c in children}
    restarts: dict[str, int] = {}

    async def listing(_request: web.Request) -> web.Response:
        return web.json_response({"children": [describe(c, c.name not in fixed, restarts.get(c.name, 0)) for c in children]})

    async def act(request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        child = by_name.get(name)
        if child is None:
            return web.json_response({"error": f"band up started no process named {name!r}"}, status=404)
        if action not in ACTIONS:
            return web.json_response({"error": f"unknown action {action!r}: use one of {', '.join(ACTIONS)}"}, status=400)
        if name in fixed:
            return web.json_response({"error": f"{name} cannot be controlled from itself; restart band up instead"}, status=409)
        running = child.process is not None and _returncode(child.process) is None
        if action in ("stop", "restart") and running:
            await _stop(child)
        if action in ("start", "restart") and not (action == "start" and running):
            await start_child(child, width)
            restarts[name] = restarts.get(name, 0) + (action == "restart")
        return web.json_response(describe(child, True, restarts.get(name, 0)))

    app = web.Application()
    app.router.add_get("/children", listing)
    app.router.add_post("/children/{name}/{action}", act)
    return app


@asynccontextmanager
async def serving(children: Sequence[Supervised], width: int, path: Path) -> AsyncIterator[Path]:
    """Serve :func:`control_app` on the unix socket ``path`` until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # noqa: ASYNC240 - a stale socket file of a killed run; one local unlink
    runner = web.AppRunner(control_app(children, width), access_log=None)
    await runner.setup()
    site = web.UnixSite(runner, str(path))
    old = os.umask(0o177)  # the socket is the owner's alone
    try:
        await site.start()
    finally:
        os.umask(old)
    try:
        yield path
    finally:
        await runner.cleanup()
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - one local unlink on the way out


class ControlClient:
    """The panel's side: talks to ``band up`` over its socket; absent socket = nothing to control."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @property
    def available(self) -> bool:
        return self.path is not None and self.path.exists()

    async def _call(self, method: str, url: str) -> tuple[int, Any]:
        assert self.path is not None
        connector = aiohttp.UnixConnector(path=str(self.path))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.request(method, "http://band-up" + url, timeout=aiohttp.ClientTimeout(total=40)) as resp:
                return resp.status, await resp.json()

    async def children(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "children": [], "message": "not started by band up: processes here are shown read-only"}
        try:
            _, body = await self._call("GET", "/children")
        except (aiohttp.ClientError, OSError) as exc:
            return {"available": False, "children": [], "message": f"band up's control socket does not answer: {exc}"}
        return {"available": True, **body}

    async def act(self, name: str, action: str) -> tuple[int, Any]:
        if not self.available:
            return 409, {"error": "this panel was not started by band up, so it controls no processes"}
        return await self._call("POST", f"/children/{name}/{action}")


__all__ = ["ACTIONS", "ControlClient", "control_app", "describe", "serving", "start_child"]
