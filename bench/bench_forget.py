"""Forgetting one person among a million events while hits flow.

    .venv/bin/python bench/bench_forget.py [--events 1000000] [--rate 1000] [--window 10]

1. A store with ``--events`` rows in ``stats.events`` (planted straight into chDB while
   the store is stopped) plus one person's 200 events that went through the stream.
2. Events published as the edge publishes them, ``--rate`` a second, the whole time.
3. Baseline: the store's ingest rate (its consumer's ack floor) and CPU per event over
   ``--window`` seconds with nothing else running.
4. ``band privacy forget`` of that person (the store's ``forget`` method): how long it
   takes, and the ingest rate from its start over its span (at least 2 s, as the store
   acks batch by batch) beside the baseline's (ratio).
5. After: the same window again, now with a tombstone, so the writer checks every event
   (its CPU per event beside the baseline's).

Deleted stream messages are unlinked (the store's default); run with
``BAND_FORGET_ERASE=true`` to see the same with each overwritten on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import sdk_event, store_client, tree_cpu_s

from band import store, wire
from band._core.rpc import RPC
from band.cli.natsserver import NatsServer
from band.store.server import DURABLE

PERSON_UID = 6_300_000_000_000_000_001
PERSON_EVENTS = 200
SPAN_S = 2.0  # the ingest rate "during" a forget is measured over its span, or this long from its start if shorter


def start(folder: Path, url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NATS_URL": url, "STORE_DIR": str(folder / "data"), "STORE_BATCH_SECONDS": "0.2",
           "STORE_HTTP_PORT": "0"}
    log = open(folder / "store.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "band", "store"], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=folder)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(60)


async def answering(sql: str = "SELECT count() AS n FROM stats.events", want: int | None = None) -> int:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            n = int((await store.query(sql, timeout__=10))[0]["n"])
            if want is None or n == want:
                return n
        except Exception:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"the store never answered {sql} with {want}")


def plant(folder: Path, n: int) -> None:
    """``n`` rows straight into the stopped store's chDB: other people's page views."""
    sql = ("INSERT INTO stats.events (id, uid, date, dateTime, timestamp, channel, name, service, page_url, user_id, "
           "stream_seq) SELECT number + 1, 6500000000000000000 + number % 200000, toDate('2026-11-01') + number % 30, "
           "toDateTime('2026-11-01 00:00:00', 'UTC') + number * 2, 1793491200000 + number * 2000, 'webch', 'page', "
           f"'track', concat('https://shop.example.com/', toString(number % 300)), '', 0 FROM numbers({n})")
    code = "import sys\nfrom chdb.session import Session\ns = Session(sys.argv[1])\ns.query(sys.argv[2])\ns.close()\n"
    subprocess.run([sys.executable, "-c", code, str(folder / "data"), sql], check=True, timeout=600)


def person_event(n: int) -> dict[str, Any]:
    event = sdk_event(n)
    event["uid"] = str(PERSON_UID)
    event["data"]["user"]["id"] = "bench-person"
    event["id"] = str(8_000_000_000_000_000 + n)
    return event


async def flow(js: Any, rate: int, stop_at: asyncio.Event) -> None:
    """Events as the edge publishes them, ``rate`` a second, in steps of 10 ms."""
    n, started = 0, time.monotonic()
    while not stop_at.is_set():
        due = int((time.monotonic() - started) * rate)
        while n < due:
            event = sdk_event(n)
            await js.publish("in.gen.track.page", wire.encode(event), headers={wire.MSG_ID_HEADER: event["id"]})
            n += 1
        await asyncio.sleep(0.01)


async def floor(js: Any) -> int:
    info = await js.consumer_info(wire.STREAM, DURABLE)
    return int(info.ack_floor.stream_seq)


async def window(js: Any, pid: int, seconds: float) -> tuple[float, float]:
    """(events stored a second, CPU µs per event of the store's processes) over ``seconds``."""
    f0, c0, t0 = await floor(js), sum(tree_cpu_s(pid).values()), time.monotonic()
    await asyncio.sleep(seconds)
    f1, c1, t1 = await floor(js), sum(tree_cpu_s(pid).values()), time.monotonic()
    stored = max(1, f1 - f0)
    return stored / (t1 - t0), (c1 - c0) / stored * 1e6


async def main(events: int, rate: int, seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-forget-"))
    with NatsServer(store_dir=folder / "js") as srv:
        nc, js = await store_client(srv.url)
        proc = start(folder, srv.url)
        await answering()  # tables made
        stop(proc)
        t = time.monotonic()
        plant(folder, events)
        print(f"planted {events:,} events in {time.monotonic() - t:.1f} s")
        proc = start(folder, srv.url)
        try:
            await answering(want=events)
            for n in range(PERSON_EVENTS):
                e = person_event(n)
                await js.publish("in.gen.track.page", wire.encode(e), headers={wire.MSG_ID_HEADER: e["id"]})
            await answering(f"SELECT count() AS n FROM stats.events WHERE uid = {PERSON_UID}", PERSON_EVENTS)
            stopping = asyncio.Event()
            load = asyncio.get_running_loop().create_task(flow(js, rate, stopping))
            await asyncio.sleep(3)  # the store reaches the flow's pace
            base_rate, base_cpu = await window(js, proc.pid, seconds)
            f0, t0 = await floor(js), time.monotonic()
            report = await RPC(lambda: nc).request("store", "forget", timeout__=600, uid=str(PERSON_UID), by="bench")
            took = time.monotonic() - t0
            await asyncio.sleep(max(0.0, SPAN_S - took))  # the ack floor moves batch by batch: a span of some length
            f1, t1 = await floor(js), time.monotonic()
            during = (f1 - f0) / (t1 - t0)
            after_rate, after_cpu = await window(js, proc.pid, seconds)
            stopping.set()
            await load
        finally:
            stop(proc)
            await nc.close()
    assert report["rows"]["events"] == PERSON_EVENTS and report["stream"] == PERSON_EVENTS, report
    print(f"forget of one person ({report['rows_total']} rows, {report['stream']} stream messages) among "
          f"{events:,} events while {rate:,} events/s flow: {report['seconds']:.2f} s in the store, "
          f"{took:.2f} s for the caller; steps {report['steps']}")
    print(f"ingest: {base_rate:,.0f} events/s before, {during:,.0f} events/s from the forget's start over {t1 - t0:.1f} s "
          f"(ratio {during / base_rate:.2f}), {after_rate:,.0f} events/s after")
    print(f"store CPU per event: {base_cpu:.0f} µs before, {after_cpu:.0f} µs with a tombstone to check "
          f"(ratio {after_cpu / base_cpu:.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rate, args.window))
