"""The store's ClickHouse HTTP interface beside chDB run directly, in one run.

    .venv/bin/python bench/bench_store_http.py [--events 20000] [--rounds 50]
        [--parquet-rows 1000000] [--query-seconds 10] [--backlog 150000]

1. ``SELECT count() FROM stats.events``: the round trip over the interface (keep-alive,
   median of ``--rounds``), beside the same query in chDB directly, in a process of its own
   with its own chDB on generated data of the same row count (the query reads the table's
   part counts, not its rows, so the data's shape does not matter).
2. A ``--parquet-rows`` ``FORMAT Parquet`` download of ``numbers()`` rows over the
   interface (the whole body read), beside the same query in that chDB process (the
   answer as bytes in memory).
3. Ingest while a reader runs: ``--backlog`` web-SDK page views wait in JetStream while the
   store is stopped; the store starts and catches up. Its rate (rows stored per second) is
   taken over a few idle seconds, then over a ``--query-seconds`` analytical query run over
   the interface (a scan of ``numbers()`` with ``max_execution_time`` and
   ``timeout_overflow_mode=break``, so it runs that long on any machine). A window in which
   the backlog ran out counts only the seconds before it did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from bench_store import count, sdk_event, store_client

from band import wire
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port

COUNT = "SELECT count() FROM stats.events"


def parquet_sql(rows: int) -> str:
    return f"SELECT number AS n, toString(number) AS s, number * 0.5 AS x FROM numbers({rows})"


def long_sql(seconds: float) -> tuple[str, dict[str, str]]:
    """A CPU-bound scan that ``break``\\ s after ``seconds`` with what it has."""
    return ("SELECT count() FROM numbers(1000000000000) WHERE cityHash64(number) % 7 = 3",
            {"max_execution_time": str(int(seconds)), "timeout_overflow_mode": "break"})


# chDB directly: a process of its own (chDB's engine is one per process), generated data
DIRECT = r"""
import json, statistics, sys, tempfile, time
from chdb.session import Session
rows, rounds, count_sql, parquet_sql = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = Session(tempfile.mkdtemp(prefix="bench-chdb-"))
s.query("CREATE DATABASE IF NOT EXISTS stats")
s.query("CREATE TABLE stats.events (dateTime DateTime, uid UInt64, name String, page_url String) "
        "ENGINE = MergeTree ORDER BY (name, dateTime)")
s.query(f"INSERT INTO stats.events SELECT now() - number, number % 5000, 'page', concat('https://x.test/', "
        f"toString(number % 300)) FROM numbers({rows})")
s.query(count_sql, "TabSeparated")
times = []
for _ in range(rounds):
    t = time.perf_counter(); s.query(count_sql, "TabSeparated"); times.append(time.perf_counter() - t)
s.query(parquet_sql, "Parquet")
pt = []
for _ in range(3):
    t = time.perf_counter(); size = len(s.query(parquet_sql, "Parquet").bytes()); pt.append(time.perf_counter() - t)
print(json.dumps({"count_ms": statistics.median(times) * 1000, "parquet_s": statistics.median(pt), "parquet_bytes": size}))
"""


def direct(rows: int, rounds: int, parquet_rows: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", DIRECT, str(rows), str(rounds), COUNT, parquet_sql(parquet_rows)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"chDB directly failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result




async def publish(js: Any, first: int, n: int) -> None:
    for start in range(first, first + n, 1000):
        await asyncio.gather(*(js.publish("in.gen.track.page", wire.encode(e), headers={wire.MSG_ID_HEADER: e["id"]})
                               for e in map(sdk_event, range(start, min(start + 1000, first + n)))))


def start_store(folder: Path, nats_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NATS_URL": nats_url, "STORE_DIR": str(folder / "data"), "STORE_HTTP_PORT": str(port)}
    return subprocess.Popen([sys.executable, "-m", "band", "store"], env=env, cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=open(folder / "store.log", "ab"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(60)


async def until(target: int) -> None:
    while await count() < target:  # noqa: ASYNC110 - a benchmark waits as long as it takes
        await asyncio.sleep(0.05)


async def http_phases(url: str, rounds: int, parquet_rows: int) -> tuple[float, float, int]:
    """The count's median round trip (ms), the Parquet download's median seconds and its size."""
    async with aiohttp.ClientSession() as http:
        async def ask(sql: str) -> bytes:
            async with http.post(url, data=sql) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"the interface answered {resp.status}: {body[:500]!r}")
                return body

        await ask(COUNT)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            await ask(COUNT)
            times.append(time.perf_counter() - t)
        sql = parquet_sql(parquet_rows) + " FORMAT Parquet"
        await ask(sql)
        took, size = [], 0
        for _ in range(3):
            t = time.perf_counter()
            size = len(await ask(sql))
            took.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, statistics.median(took), size


async def rate_over(seconds: float | None, target: int, reader: asyncio.Task[Any] | None = None) -> tuple[float, float]:
    """Rows stored per second over ``seconds`` (or until ``reader`` ends), and the seconds
    it was measured over (cut where the backlog ran out)."""
    started, first = time.perf_counter(), await count()
    last_t, last_n = started, first
    while True:
        n, t = await count(), time.perf_counter()
        if n < target:
            last_t, last_n = t, n
        if n >= target or (reader.done() if reader else t - started >= (seconds or 0)):
            break
        await asyncio.sleep(0.2)
    span = last_t - started
    return ((last_n - first) / span if span > 0 else 0.0), span


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-store-http-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with NatsServer(store_dir=folder / "js") as server:
        nc, js = await store_client(server.url)
        await publish(js, 0, args.events)
        proc = start_store(folder, server.url, port)
        try:
            await until(args.events)
            print(f"{args.events:,} events in the store; the interface at {url}")
            base = direct(args.events, args.rounds, args.parquet_rows)
            count_ms, parquet_s, size = await http_phases(url, args.rounds, args.parquet_rows)
            print(f"SELECT count() FROM stats.events, median of {args.rounds}: interface {count_ms:.2f} ms, "
                  f"chDB directly {base['count_ms']:.2f} ms (+{count_ms - base['count_ms']:.2f} ms, "
                  f"x{count_ms / base['count_ms']:.1f})")
            print(f"{args.parquet_rows:,} rows FORMAT Parquet ({size / 1e6:.1f} MB), median of 3: interface "
                  f"{parquet_s:.3f} s, chDB directly {base['parquet_s']:.3f} s "
                  f"(+{parquet_s - base['parquet_s']:.3f} s, x{parquet_s / base['parquet_s']:.2f})")
            stop(proc)
            total = args.events + args.backlog
            t = time.perf_counter()
            await publish(js, args.events, args.backlog)
            print(f"{args.backlog:,} more events wait in JetStream ({time.perf_counter() - t:.1f} s to publish); "
                  "the store starts again")
            proc = start_store(folder, server.url, port)
            while await count() <= args.events:  # noqa: ASYNC110 - a benchmark waits as long as it takes
                await asyncio.sleep(0.05)
            idle, idle_s = await rate_over(args.idle_seconds, total)
            sql, settings = long_sql(args.query_seconds)
            async with aiohttp.ClientSession() as http:
                async def read() -> float:
                    t = time.perf_counter()
                    async with http.post(url, params=settings, data=sql) as resp:
                        await resp.read()
                    return time.perf_counter() - t

                reader = asyncio.ensure_future(read())
                busy, busy_s = await rate_over(None, total, reader)
                query_s = await reader
            print(f"ingest idle: {idle:,.0f} events/s (over {idle_s:.1f} s); during a {query_s:.1f} s query over the "
                  f"interface: {busy:,.0f} events/s (over {busy_s:.1f} s); busy / idle = "
                  f"{busy / idle if idle else 0:.2f}")
            if busy_s < query_s - 0.5:
                print("  the backlog ran out during the query: raise --backlog for a window as long as the query")
        finally:
            stop(proc)
            await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events in the store for the count (default 20000)")
    parser.add_argument("--rounds", type=int, default=50, help="count round trips to take the median of (default 50)")
    parser.add_argument("--parquet-rows", type=int, default=1_000_000, help="rows of the Parquet download (default 1000000)")
    parser.add_argument("--query-seconds", type=float, default=10.0, help="how long the reader runs (default 10)")
    parser.add_argument("--idle-seconds", type=float, default=4.0, help="the idle ingest window (default 4)")
    parser.add_argument("--backlog", type=int, default=150_000, help="events waiting for the ingest phase (default 150000)")
    asyncio.run(main(parser.parse_args()))
