"""Helpers for the store's tests: a ``band store`` process, events as the edge publishes them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from band import RPCError, store, wire
from band._runtime.stream import ensure_stream
from support.poll import wait_for
from support.processes import Proc

UID = "6462464730849083392"


@contextlib.contextmanager
def running_store(root: Path) -> Iterator[tuple[str, Proc]]:
    """A nats-server of its own and a store on it in ``root``: ``(NATS URL, the store)``."""
    from band.cli.natsserver import NatsServer

    with NatsServer(store_dir=root / "js") as srv:
        proc = start_store(root, srv.url)
        try:
            yield srv.url, proc
        finally:
            proc.stop()


def start_store(tmp_path: Path, nats_url: str, name: str = "store", **env: str) -> Proc:
    """``band store`` with its data in ``tmp_path/data``, run in ``tmp_path`` (where store.yml is read)."""
    log = tmp_path / f"{name}.log"
    full = {**os.environ, "NATS_URL": nats_url, "STORE_DIR": str(tmp_path / "data"), "STORE_BATCH_SECONDS": "0.2", **env}
    with open(log, "ab") as out:
        popen = subprocess.Popen([sys.executable, "-m", "band", "store"], stdout=out, stderr=subprocess.STDOUT,
                                 env=full, cwd=tmp_path)
    return Proc(popen, log, f"store {name}")


def event(n: int, **data: Any) -> dict[str, Any]:
    return {"key": "in.gen.track.page", "service": "track", "name": "page", "channel": "http", "projectId": 0,
            "uid": UID, "td": {"ip": "127.0.0.1", "ua": "test"}, "data": {"page": {"url": f"https://x.test/{n}"}, **data},
            "id": str(7_000_000_000_000_000 + n), "time": 1_700_000_000_000 + n}


async def publish(nc: Any, events: list[dict[str, Any]]) -> None:
    js = nc.jetstream()
    await ensure_stream(js)
    for e in events:
        key = f"in.gen.{e['service']}.{e['name']}"
        await js.publish(key, wire.encode(e), headers={wire.MSG_ID_HEADER: e["id"]})


async def count(sql: str = "SELECT count() AS n FROM stats.events", **params: Any) -> int:
    try:
        rows = await store.query(sql, timeout__=5, **params)
    except RPCError:
        return -1
    return int(rows[0]["n"])


async def counted(expected: int, proc: Proc, sql: str = "SELECT count() AS n FROM stats.events", timeout: float = 60) -> None:
    async def there() -> bool:
        return await count(sql) == expected

    await wait_for(there, timeout, f"{expected} rows from {sql}", procs=[proc])


def spawned(pid: int) -> dict[int, str]:
    """The store's spawned children (not multiprocessing's resource tracker): ``chdb``
    for the process holding chDB, ``builder`` for a row builder."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for kid in map(int, (task / "children").read_text().split()):
            try:
                if b"spawn_main" in Path(f"/proc/{kid}/cmdline").read_bytes():
                    found[kid] = "chdb" if "chdb" in Path(f"/proc/{kid}/maps").read_text() else "builder"
            except OSError:  # exited meanwhile
                pass
    return found


def gone(pids: list[int]) -> bool:
    """Each of ``pids`` has exited (gone, or a zombie nobody reaps)."""
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            return False
    return True


async def store_check(nats_url: str, *args: str, timeout: float = 120) -> tuple[int, str]:
    """``band store check ARGS`` as a user runs it: its exit code and stdout."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "store", "check", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "NATS_URL": nats_url})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def plant(data_dir: Path, *statements: str) -> None:
    """Run ``statements`` on a stopped store's data directory with chDB (a loss or a
    duplicate planted on purpose), in a process of its own as the store does."""
    code = ("import sys\nfrom chdb.session import Session\ns = Session(sys.argv[1])\n"
            "for sql in sys.argv[2:]:\n    s.query(sql)\ns.close()\n")
    subprocess.run([sys.executable, "-c", code, str(data_dir), *statements], check=True, timeout=120)
