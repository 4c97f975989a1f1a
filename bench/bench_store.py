"""The store's numbers: ingest from the stream into embedded chDB, hit → queryable latency,
and the store's memory during a backlog catch-up.

    .venv/bin/python bench/bench_store.py [--events 50000]

1. Ceiling: the same rows inserted straight into chDB (``INSERT ... FORMAT JSONEachRow``,
   batches of 5,000), no NATS, no row building; beside it the same in the
   ``JSONCompactEachRow`` form the store sends.
2. Ingest: N web-SDK-shaped events waiting in JetStream (the store was down), then
   ``band store`` starts and catches up; events/s from start of writing to the last
   row, with the ratio to the ceiling; CPU per event of each process (the store's, the
   chDB process it starts, row builders if any, nats-server); memory of each, with a
   running count every 100,000 events.
3. Latency: 200 events, one every 20 ms, published as the edge does, polled through
   ``store.query``; p50/p99 from publish to queryable, at the default batch settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from band import App, store, wire
from band._core.app import set_current
from band._runtime.stream import ensure_stream
from band.cli.natsserver import NatsServer
from band.store.config import load
from band.store.prepare import collect_less
from band.store.rows import RowBuilder

UID = 6462464730849083392


def sdk_event(n: int) -> dict[str, Any]:
    """A page view as the web SDK sends it, after uaparser and geoip (about 1 KB)."""
    return {
        "key": "in.gen.track.page", "service": "track", "name": "page", "channel": "webch", "projectId": 1,
        "uid": str(UID + n % 5000),
        "td": {"ip": "109.252.93.158", "ua": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_6) Chrome/70.0 Safari/537.36",
               "ref": "https://www.google.com/", "host": "shop.example.com"},
        "data": {
            "page": {"url": f"https://shop.example.com/catalog/{n % 300}?utm_source=google&utm_campaign=spring",
                     "title": "Catalog", "domain": "shop.example.com", "scheme": "https", "ref": "https://www.google.com/",
                     "query": {"utm_source": "google", "utm_campaign": "spring", "page": str(n % 7)}},
            "sess": {"type": "campaign", "engine": "google", "num": 3, "hasMarks": 1, "pageNum": n % 20, "eventNum": n % 50,
                     "marks": {"utm_source": "google", "utm_campaign": "spring", "has_gclid": 0}, "start": 1540771600000,
                     "refhost": "www.google.com"},
            "browser": {"if1": 0, "if2": 0, "w": 1440, "h": 900, "tw": 1440, "th": 900, "aw": 1440, "ah": 877,
                        "sopr": 2, "soa": 0, "sot": "landscape-primary", "plt": "MacIntel", "prd": "Google Inc."},
            "lib": {"id": "web-sdk", "v": 3.1, "sv": 1.0},
            "user": {"tz": "Europe/Moscow", "ts": 1540771658000, "tzo": -180, "id": f"u{n % 900}"},
            "char": {"ls": 1, "ae": 1, "pr": 0, "sb": 1, "ab": 0, "wp": 0},
            "perf": {"cs": 0, "scs": 0, "dl": 12, "dc": 400, "di": 350, "rqs": 20, "rss": 120, "rse": 130, "ce": 0},
            "data": {"category": "shoes"},
            "uaparser": {"os_family": "Mac OS X", "os_version": [10, 13, 6], "browser_family": "Chrome",
                         "browser_version": [70, 0, 3538], "device_family": "Mac", "is_bot": False, "is_mob": False,
                         "is_tablet": False, "is_pc": True},
            "geoip": {"country_code": "RU", "country_name": "Russia"},
        },
        "id": str(7_000_000_000_000_000 + n), "time": 1_700_000_000_000 + n,
    }


def ceiling(rows: list[dict[str, Any]], folder: Path) -> dict[str, tuple[float, float]]:
    """Rows/s and CPU µs per row of direct chDB inserts of the same rows, batches of
    5,000, each format in a child of its own on a fresh directory (chDB keeps one path
    per process, and one run's merges would slow the next): ``JSONEachRow`` (the
    ceiling the store is held to) and ``JSONCompactEachRow`` over the table's columns
    (the format the store sends)."""
    code = f"""
import json, sys, time
from pathlib import Path
from band.store.backend import ChdbBackend
from band.store.config import load
from band.store.migrate import ensure
from band.store.prepare import collect_less
from band.store.rows import RowBuilder
rows = json.load(open({str(folder / 'rows.json')!r}))
config = load()
builder = RowBuilder(config)
b = ChdbBackend(Path({str(folder)!r}) / ('ceiling-' + sys.argv[1]))
ensure(b, config)
fmt, columns = builder.form('events')
forms = {{"JSONEachRow": ([json.dumps(r, separators=(',', ':')).encode() for r in rows], "JSONEachRow", []),
          "JSONCompactEachRow": ([builder.encode('events', r) for r in rows], fmt, columns)}}
for name, (lines, form, cols) in [(sys.argv[1], forms[sys.argv[1]])]:
    bodies = [b"\\n".join(lines[i:i + 5000]) for i in range(0, len(lines), 5000)]
    t, c = time.perf_counter(), time.process_time()
    for body in bodies:
        b.insert('stats', 'events', body, form, cols)
    print(name, len(rows) / (time.perf_counter() - t), (time.process_time() - c) / len(rows) * 1e6)
"""
    import json

    (folder / "rows.json").write_text(json.dumps(rows))
    found = {}
    for form in ("JSONEachRow", "JSONCompactEachRow"):
        out = subprocess.run([sys.executable, "-c", code, form], capture_output=True, text=True, check=True)
        name, rate, cpu = out.stdout.strip().splitlines()[-1].split()
        found[name] = (float(rate), float(cpu))
    return found


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (``VmHWM``: its peak so far), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid: int, field: str = "VmRSS") -> dict[str, float]:
    """Resident memory of the store's process and of each child (chDB's, the row
    builders), MB; with ``VmHWM`` each one's peak so far (their sum bounds the total)."""
    found = {"store": rss_mb(pid, field)}
    for kid in children(pid):
        try:
            name = role(kid)
            found[name] = found.get(name, 0.0) + rss_mb(kid, field)
        except OSError:
            pass
    return found


def _rss_text(parts: dict[str, float]) -> str:
    return f"{sum(parts.values()):.0f} MB (" + ", ".join(f"{k} {v:.0f}" for k, v in parts.items() if v) + ")"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used: on a shared machine CPU per event is
    the honest figure, wall-clock rates depend on the neighbours."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the store's row-building workers)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def role(kid: int) -> str:
    """What a child of the store is: chDB's process, a row builder, or multiprocessing's tracker."""
    if b"resource_tracker" in Path(f"/proc/{kid}/cmdline").read_bytes():
        return "tracker"
    return "chdb" if "chdb" in Path(f"/proc/{kid}/maps").read_text() else "builder"


def tree_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of the store's process and of its children, by role."""
    found = {"store": cpu_s(pid)}
    for kid in children(pid):
        try:
            name = role(kid)
            found[name] = found.get(name, 0.0) + cpu_s(kid)
        except OSError:
            pass
    return found


async def store_client(url: str) -> tuple[Any, Any]:
    """A NATS connection that ``from band import store`` calls go out on, and its JetStream
    with the events stream made: what every store bench starts with."""
    nc = await nats.connect(url)
    app = App("bench")
    app.nc = nc
    set_current(app)
    js = nc.jetstream()
    await ensure_stream(js)
    return nc, js


async def count() -> int:
    try:
        return int((await store.query("SELECT count() AS n FROM stats.events", timeout__=10))[0]["n"])
    except Exception:
        return -1


async def main(n: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    events = [sdk_event(i) for i in range(min(n, 50_000))]
    builder = RowBuilder(load())
    collect_less()  # as the store's process does
    t = time.process_time()
    for e in events:
        table, _, _, line = builder.line(e)
        builder.encode(table, line)
    build_us = (time.process_time() - t) / len(events) * 1e6
    rows = [builder.build(e)[1] for e in events]
    ceilings = ceiling(rows, folder)
    top, top_cpu = ceilings["JSONEachRow"]
    print(f"row building and encoding, as the store does it: {build_us:.1f} CPU µs per event "
          f"({1e6 / build_us:,.0f} events/s on one core)")
    for name, (rate, cpu) in ceilings.items():
        print(f"{'ceiling' if name == 'JSONEachRow' else 'the same'}, direct chDB INSERT FORMAT {name}: {rate:,.0f} rows/s, "
              f"{cpu:.1f} CPU µs per row ({1e6 / cpu:,.0f} rows per CPU-second)")

    with NatsServer(store_dir=folder / "js") as server:
        nc, js = await store_client(server.url)
        published = time.perf_counter()
        for start in range(0, n, 1000):
            acks = [js.publish("in.gen.track.page", wire.encode(e), headers={wire.MSG_ID_HEADER: e["id"]})
                    for e in map(sdk_event, range(start, min(start + 1000, n)))]
            await asyncio.gather(*acks)
            if start % 100_000 == 0 and start:
                print(f"  published {start:,} / {n:,}", flush=True)
        print(f"backlog: {n:,} events in JetStream ({time.perf_counter() - published:.0f} s to publish)")
        env = {**os.environ, "NATS_URL": server.url, "STORE_DIR": str(folder / "data")}
        proc = subprocess.Popen([sys.executable, "-m", "band", "store"], env=env, cwd=folder,
                                stdout=subprocess.DEVNULL, stderr=open(folder / "store.log", "wb"))
        try:
            assert server.process is not None
            nats_pid = server.process.pid
            while await count() < 0:  # noqa: ASYNC110 - the store's table is not there yet; a benchmark waits as long as it takes
                await asyncio.sleep(0.05)
            started, first = time.perf_counter(), await count()
            cpu0, nats0 = tree_cpu_s(proc.pid), cpu_s(nats_pid)
            shown = first
            peak_now = 0.0
            while (got := await count()) < n:
                peak_now = max(peak_now, sum(tree_rss_mb(proc.pid).values()))
                if got - shown >= 100_000:
                    print(f"  stored {got:,} / {n:,}, store RSS now {_rss_text(tree_rss_mb(proc.pid))}", flush=True)
                    shown = got
                await asyncio.sleep(0.1)
            took = time.perf_counter() - started
            cpu1 = tree_cpu_s(proc.pid)
            used = {p: cpu1[p] - cpu0.get(p, 0.0) for p in cpu1}
            store_us = sum(used.values()) / (got - first) * 1e6
            per_role = {p: v / (got - first) * 1e6 for p, v in used.items()}
            nats_us = (cpu_s(nats_pid) - nats0) / (got - first) * 1e6
            rate = (got - first) / took
            print(f"ingest from the stream into embedded chDB: {rate:,.0f} events/s wall "
                  f"({rate / top:.2f}x the direct-insert ceiling), {got - first:,} events of backlog")
            print(f"CPU per event: store {store_us:.1f} µs ({1e6 / store_us:,.0f} events per CPU-second, "
                  f"{store_us / top_cpu:.2f}x the ceiling's CPU per row), nats-server {nats_us:.1f} µs")
            print(f"  of which the store's process {per_role['store']:.1f} µs, chDB's process {per_role.get('chdb', 0):.1f} µs, "
                  f"row builders {per_role.get('builder', 0):.1f} µs; the store and nats-server kept "
                  f"{(sum(used.values()) + (cpu_s(nats_pid) - nats0)) / took:.2f} of {os.cpu_count()} CPUs busy")
            print(f"store RSS while catching up: highest sampled total {peak_now:.0f} MB; each process's peak "
                  f"{_rss_text(tree_rss_mb(proc.pid, 'VmHWM'))}; now {_rss_text(tree_rss_mb(proc.pid))}")

            sent: dict[int, float] = {}
            seen: dict[int, float] = {}

            async def publisher() -> None:
                for i in range(200):
                    e = sdk_event(n + i)
                    sent[int(e["id"])] = time.perf_counter()
                    await js.publish("in.gen.track.page", wire.encode(e), headers={wire.MSG_ID_HEADER: e["id"]})
                    await asyncio.sleep(0.02)

            async def poller() -> None:
                low = 7_000_000_000_000_000 + n
                while len(seen) < 200:
                    found = await store.query("SELECT id FROM stats.events WHERE id >= {low:UInt64}", low=low)
                    now = time.perf_counter()
                    for row in found:
                        seen.setdefault(int(row["id"]), now)
                    await asyncio.sleep(0.02)

            await asyncio.gather(publisher(), poller())
            latencies = [seen[i] - sent[i] for i in sent]
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            print(f"hit -> queryable at the defaults (batch 5,000 rows / 1 s): p50 {statistics.median(latencies):.2f} s, "
                  f"p99 {p99:.2f} s")
        finally:
            proc.terminate()
            proc.wait(30)
            await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000,
                        help="events of backlog to catch up on (default 50000; the ceiling uses the first 50000)")
    asyncio.run(main(parser.parse_args().events))
