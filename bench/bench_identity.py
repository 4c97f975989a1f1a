"""The identity graph's numbers, on this machine: identify calls sustained while 1,000
hits/s flow, and the time from an identify to the person's past events resolving in a
query.

    .venv/bin/python bench/bench_identity.py [--seconds 20] [--trials 30]

1. Baseline: 1,000 page hits/s published as the edge does (JetStream, Nats-Msg-Id) into a
   running ``band store`` for ``--seconds``; hit → queryable p50/p99.
2. The same hits, and meanwhile ``identity.identify`` calls (IN_FLIGHT in flight, each answered
   once its change is stored) for as long: identify calls/s, and the hits' p50/p99 again,
   as a ratio to the baseline's (the same run, the same store).
3. Identify → resolved: a uid with five past anonymous events is identified as a user
   whose person is another uid's; the time from the call until ``stats.events_people``
   puts all five under that person, ``--trials`` times; p50/p99.

The absolute numbers are this machine's (2 cores shared with the store, chDB and
nats-server); the ratios are what carries over.
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

from bench_store import store_client

from band import identity, store, wire
from band.cli.natsserver import NatsServer

BASE_UID = 6_462_464_730_849_100_000
RATE = 1000
IN_FLIGHT = 1024  # identify calls outstanding: each waits for its batch to be stored (about batch_seconds)


def hit(n: int, uid: int) -> dict[str, Any]:
    return {"key": "in.gen.track.page", "service": "track", "name": "page", "channel": "http", "projectId": 1,
            "uid": str(uid), "td": {"ip": "109.252.93.158", "ua": "Mozilla/5.0 Chrome/120.0"},
            "data": {"page": {"url": f"https://shop.example.com/p/{n % 300}", "title": "P"}},
            "id": str(7_400_000_000_000_000 + n), "time": int(time.time() * 1000)}


class Hits:
    """Hits at RATE per second; each one's publish time, to measure it queryable."""

    def __init__(self, js: Any) -> None:
        self.js = js
        self.sent: dict[int, float] = {}
        self.n = 0

    async def flow(self, seconds: float) -> None:
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            due = int((now - start) * RATE) - (self.n - self._first)
            batch = [hit(self.n + i, BASE_UID + (self.n + i) % 20_000) for i in range(max(0, due))]
            for e in batch:
                self.sent[int(e["id"])] = time.perf_counter()
            await asyncio.gather(*(self.js.publish("in.gen.track.page", wire.encode(e), headers={wire.MSG_ID_HEADER: e["id"]})
                                   for e in batch))
            self.n += len(batch)
            await asyncio.sleep(0.01)

    def phase(self) -> None:
        self._first = self.n
        self.sent.clear()


async def latencies(hits: Hits, flowing: asyncio.Future[None]) -> list[float]:
    """Publish → queryable of a phase's hits: polled while they flow and until all are
    stored, noting when each id first appears."""
    seen: dict[int, float] = {}
    while not flowing.done() or len(seen) < len(hits.sent):
        if hits.sent:
            low = min(hits.sent)
            rows = await store.query("SELECT max(id) AS top, groupArray(id) AS ids FROM (SELECT id FROM stats.events "
                                     "WHERE id >= {lo:UInt64} AND id NOT IN {known:Array(UInt64)})",
                                     lo=low, known=list(seen)[-5000:], timeout__=30)
            now = time.perf_counter()
            for i in rows[0]["ids"]:
                seen.setdefault(int(i), now)
        await asyncio.sleep(0.05)
    return [seen[i] - hits.sent[i] for i in hits.sent]


def quantiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


async def identifies(seconds: float, start: int) -> int:
    done = 0
    stop = time.perf_counter() + seconds

    async def caller(k: int) -> None:
        nonlocal done
        n = k
        while time.perf_counter() < stop:
            await identity.identify(BASE_UID + 100_000 + start + n, f"bench-{(start + n) // 2}", {"n": n}, timeout__=60)
            done += 1
            n += IN_FLIGHT

    await asyncio.gather(*(caller(k) for k in range(IN_FLIGHT)))
    return done


async def resolved(js: Any, trials: int) -> list[float]:
    out = []
    for t in range(trials):
        known, anon = BASE_UID + 500_000 + 2 * t, BASE_UID + 500_001 + 2 * t
        await identity.identify(known, f"resolve-{t}")
        past = [hit(10_000_000 + 10 * t + i, anon) for i in range(5)]
        await asyncio.gather(*(js.publish("in.gen.track.page", wire.encode(e), headers={wire.MSG_ID_HEADER: e["id"]})
                               for e in past))
        while int((await store.query("SELECT count() AS n FROM stats.events WHERE uid = {u:UInt64}", u=anon))[0]["n"]) < 5:  # noqa: ASYNC110 - polling the store is what is measured
            await asyncio.sleep(0.02)
        started = time.perf_counter()
        await identity.identify(anon, f"resolve-{t}")
        sql = "SELECT count() AS n FROM stats.events_people WHERE uid = {u:UInt64} AND person_id = {p:UInt64}"
        while int((await store.query(sql, u=anon, p=known))[0]["n"]) < 5:  # noqa: ASYNC110 - polling the store is what is measured
            await asyncio.sleep(0.01)
        out.append(time.perf_counter() - started)
    return out


async def main(seconds: float, trials: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-identity-"))
    with NatsServer(store_dir=folder / "js") as server:
        nc, js = await store_client(server.url)
        env = {**os.environ, "NATS_URL": server.url, "STORE_DIR": str(folder / "data")}
        proc = subprocess.Popen([sys.executable, "-m", "band", "store"], env=env, cwd=folder,
                                stdout=subprocess.DEVNULL, stderr=open(folder / "store.log", "wb"))
        try:
            while True:
                try:
                    await store.query("SELECT 1 AS n", timeout__=2)
                    break
                except Exception:  # the store is starting
                    await asyncio.sleep(0.1)
            hits = Hits(js)
            hits.phase()
            flowing = asyncio.ensure_future(hits.flow(seconds))
            base = quantiles(await latencies(hits, flowing))
            print(f"baseline: {RATE:,} hits/s for {seconds:.0f} s; hit -> queryable p50 {base[0] * 1000:.0f} ms, "
                  f"p99 {base[1] * 1000:.0f} ms")
            hits.phase()
            flowing = asyncio.ensure_future(hits.flow(seconds))
            measuring = asyncio.ensure_future(latencies(hits, flowing))
            calls = await identifies(seconds, 0)
            mixed = quantiles(await measuring)
            print(f"with identifies: {calls / seconds:,.0f} identify calls/s sustained ({IN_FLIGHT} in flight, each answered once "
                  f"stored) beside {RATE:,} hits/s; hit -> queryable p50 {mixed[0] * 1000:.0f} ms "
                  f"({mixed[0] / base[0]:.2f}x the baseline), p99 {mixed[1] * 1000:.0f} ms ({mixed[1] / base[1]:.2f}x)")
            times = await resolved(js, trials)
            p50, p99 = quantiles(times)
            print(f"identify -> the person's past events resolving in stats.events_people: p50 {p50 * 1000:.0f} ms, "
                  f"p99 {p99 * 1000:.0f} ms over {trials} trials (default batch_seconds 1.0)")
            print("(numbers of this machine; the ratios carry over)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.trials))
