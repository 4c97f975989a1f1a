"""The segments worker's pass (examples/recipes/segments) on generated data: visitors per
pass, seconds per pass, and the pass's Python memory.

    .venv/bin/python bench/bench_segments.py [--visitors 12000] [--days 14] [--passes 3]
        [--redis redis://127.0.0.1:6379/0]

``band demo --jsonl - | band store import - --direct`` fills a fresh store; ``band store``
serves it on a nats-server of this run's own; the worker's ``compute`` runs here, against the
Redis given, ``--passes`` times (the first writes every visitor, later ones only read and
compare); then one more pass with tracemalloc for its peak. The visitors' ``s:<uid>`` keys
are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import redis.asyncio as aioredis

import band.store
from band import store
from band._core.app import set_current
from band._core.loader import load_service
from band._runtime.connect import connect
from band.cli.natsserver import NatsServer

WORKER = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "segments"


def fill(folder: Path, visitors: int, days: int) -> float:
    """The demo's events in a store at ``folder/store``; seconds it took."""
    started = time.perf_counter()
    demo = subprocess.Popen([sys.executable, "-m", "band", "demo", "--jsonl", "-", "--seed", "1", "--visitors",
                             str(visitors), "--days", str(days)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    done = subprocess.run([sys.executable, "-m", "band", "store", "import", "-", "--direct", str(folder / "store")],
                          stdin=demo.stdout, capture_output=True, text=True, check=False)
    assert demo.stdout is not None
    demo.stdout.close()
    if demo.wait() != 0 or done.returncode != 0:
        raise SystemExit(f"filling the store failed:\n{done.stderr[-3000:]}")
    print(done.stdout.strip().splitlines()[-1])
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-segments-"))
    took = fill(folder, args.visitors, args.days)
    print(f"{args.visitors:,} visitors over {args.days} days generated and imported in {took:.0f} s")
    with NatsServer(store_dir=folder / "js") as server:
        env = {**os.environ, "STORE_DIR": str(folder / "store"), "NATS_URL": server.url, "STORE_HTTP_PORT": "0"}
        proc = subprocess.Popen([sys.executable, "-m", "band", "run", str(Path(band.store.__file__).parent / "service"),
                                 "--nats", server.url], env=env, stdout=subprocess.DEVNULL,
                                stderr=open(folder / "store.log", "wb"))
        nc = await connect(server.url, name="bench-segments", max_reconnect_attempts=0)
        app = load_service(WORKER)
        app.nc = nc
        set_current(app)
        worker = app.module
        assert worker is not None
        redis = aioredis.from_url(args.redis)
        uids: list[str] = []
        try:
            while True:
                try:
                    if (await app.rpc.request("store", "status", timeout__=2))["state"] == "writing":
                        break
                except band.RPCError:
                    pass
                await asyncio.sleep(0.2)
            for n in range(args.passes):
                started = time.perf_counter()
                counts = await worker.compute(redis)
                took = time.perf_counter() - started
                print(f"pass {n + 1}: {counts['visitors']:,} visitors ({counts['changed']:,} changed) in {took:.2f} s: "
                      f"{counts['visitors'] / took:,.0f} visitors/s")
            tracemalloc.start()
            await worker.compute(redis)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            print(f"a pass's peak Python memory (tracemalloc): {peak:.1f} MB")
            uids = [row["uid"] async for row in store.stream("SELECT DISTINCT toString(uid) AS uid FROM stats.events")]
        finally:
            for start in range(0, len(uids), 5000):
                await redis.delete(*[f"s:{u}" for u in uids[start:start + 5000]])
            await redis.aclose()
            await nc.close()
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=12_000, help="demo visitors (default 12000)")
    parser.add_argument("--days", type=int, default=14, help="days of demo traffic (default 14)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes (default 3)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="where the segments go")
    asyncio.run(main(parser.parse_args()))
