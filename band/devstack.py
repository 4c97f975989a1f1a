"""``band up``: the whole pipeline on one machine, in one command.

NATS (the one at ``NATS_URL`` if it answers, else the wheel's nats-server with
JetStream under ``./.band/``), then the edge, then every service as its own process,
logs prefixed by name. Ctrl-C stops them in reverse order, each cleanly (SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from urllib.parse import urlparse

from ._runtime.connect import servers_from
from .metrics import metrics_env
from .natsserver import NatsServer, die_with_parent, free_port, port_open

STOP_TIMEOUT_S = 15.0


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


async def nats_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a NATS server greets us (its ``INFO`` line) at any of ``url``'s servers."""
    for server in servers_from(url):
        parsed = urlparse(server if "://" in server else f"nats://{server}")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout
            )
        except (OSError, asyncio.TimeoutError):
            continue
        try:
            greeting = await asyncio.wait_for(reader.readline(), timeout)
        except (OSError, asyncio.TimeoutError):
            greeting = b""
        finally:
            writer.close()
        if greeting.startswith(b"INFO"):
            return True
    return False


@dataclass
class Child:
    """One process of the stack, with its output prefixed by name."""

    name: str
    args: list[str]
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = None

    async def start(self, width: int) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            preexec_fn=die_with_parent,  # ...and if we die, they follow
        )
        self.pump = asyncio.get_running_loop().create_task(self._pump(width))

    async def _pump(self, width: int) -> None:
        assert self.process is not None and self.process.stdout is not None
        prefix = f"{self.name:>{width}} | "
        async for line in self.process.stdout:
            sys.stdout.write(prefix + line.decode("utf-8", "replace").rstrip("\n") + "\n")
            sys.stdout.flush()
        code = await self.process.wait()
        sys.stdout.write(f"{prefix}exited with {code}\n")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self.pump is not None:
            await asyncio.wait([self.pump], timeout=2)


async def _wait_port(port: int, child: Child, timeout: float = 20.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if child.process is not None and child.process.returncode is not None:
            return False
        if port_open("127.0.0.1", port):
            return True
        await asyncio.sleep(0.1)
    return False


async def _up(services: list[Path], port: int, data: Path, reload: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    url = ",".join(servers_from(None))
    server: NatsServer | None = None
    if not await nats_answers(url):
        nats_port = 4222 if not port_open("127.0.0.1", 4222) else free_port()
        server = NatsServer(store_dir=data / "nats", port=nats_port, log_file=data / "nats.log", die_with_parent=True)
        server.start()  # in the main thread: the parent-death signal follows the starting thread
        url = server.url
        print(f"started nats-server with JetStream at {url} (data in {data / 'nats'})", flush=True)
    else:
        print(f"using NATS at {url}", flush=True)
    env = {**os.environ, "NATS_URL": url, "PYTHONUNBUFFERED": "1"}
    width = max([4] + [len(p.stem if p.is_file() else p.name) for p in services])
    edge = Child("edge", [sys.executable, "-m", "broker", "--port", str(port)], {**env, "PORT": str(port)})
    children = [edge] + [
        Child(p.stem if p.is_file() else p.name, [sys.executable, "-m", "band", "run", str(p)], {**env, **metrics_env(i)})
        for i, p in enumerate(services)
    ]
    store_env = {**env, "STORE_DIR": env.get("STORE_DIR") or str(data / "store")}  # every event into ClickHouse
    children.append(Child("store", [sys.executable, "-m", "band", "store"], store_env))  # last: children[1:] pair with services
    try:
        await edge.start(width)
        if not await _wait_port(port, edge):
            print(f"the edge did not start on :{port}", file=sys.stderr)
            return 1
        for child in children[1:]:
            await child.start(width)
        if reload:  # band.reload: a change restarts only its own service
            from .reload import Reloader

            loop.create_task(Reloader(list(zip(services, children[1:])), width).run(stop))
        print(f"\nband is up\n  NATS: {url}\n  edge: http://127.0.0.1:{port}/\n  services: "
              f"{', '.join(c.name for c in children[1:]) or 'none'}\nCtrl-C stops everything.\n", flush=True)
        await stop.wait()
        print("\nstopping…", flush=True)
    finally:
        for child in reversed(children):
            await child.stop()
        if server is not None:
            await asyncio.to_thread(server.stop)
    return 0


def up(paths: list[Path], port: int | None = None, data: Path = Path(".band"), reload: bool = False) -> int:
    """Entry point of ``band up``; returns the exit code."""
    try:
        services = find_services(paths)
    except FileNotFoundError as exc:
        print(f"band up: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_up(services, port or int(os.environ.get("PORT") or 8080), data, reload))
