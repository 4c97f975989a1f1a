"""``band store import`` beside the live ingest, in one run, on the same events.

    .venv/bin/python bench/bench_store_import.py [--events 1000000]

1. Live: N web-SDK page views (bench_store's ``sdk_event``) wait in JetStream, then
   ``band store`` starts and catches up; events/s from its first answer to the last row.
2. Import through the running store: N more such events (other ids) as JSON lines,
   ``band store import FILE``; events/s over the command's whole run (start-up included),
   and the ratio to the live rate.
3. Import into a stopped store: the same file into a fresh data directory (``--direct``).

Each import is run a second time: every event is skipped, and that rate is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_store import count, sdk_event, store_client

from band import wire
from band.cli.natsserver import NatsServer

TARGET = 20_000  # events/s the import should reach




def band_import(folder: Path, *args: str) -> tuple[float, str]:
    """Seconds the command took, and its summary line."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "band", "store", "import", *args], cwd=folder, capture_output=True,
                          text=True, env={**os.environ, "STORE_DIR": str(folder / "direct")})
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"band store import failed:\n{done.stderr[-3000:]}")
    return took, done.stdout.strip().splitlines()[-1]


async def main(n: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    path = folder / "events.jsonl"
    with open(path, "w") as out:
        out.writelines(json.dumps(sdk_event(i), separators=(",", ":")) + "\n" for i in range(n, 2 * n))
    print(f"{n:,} events as JSON lines: {path.stat().st_size / 1e6:,.0f} MB")
    with NatsServer(store_dir=folder / "js") as server:
        nc, js = await store_client(server.url)
        for start in range(0, n, 1000):
            await asyncio.gather(*(js.publish("in.gen.track.page", wire.encode(e), headers={wire.MSG_ID_HEADER: e["id"]})
                                   for e in map(sdk_event, range(start, min(start + 1000, n)))))
        env = {**os.environ, "NATS_URL": server.url, "STORE_DIR": str(folder / "data")}
        proc = subprocess.Popen([sys.executable, "-m", "band", "store"], env=env, cwd=folder,
                                stdout=subprocess.DEVNULL, stderr=open(folder / "store.log", "wb"))
        try:
            while await count() < 0:  # noqa: ASYNC110 - the store's table is not there yet; a benchmark waits as long as it takes
                await asyncio.sleep(0.05)
            started, first = time.perf_counter(), await count()
            while (got := await count()) < n:  # noqa: ASYNC110 - polls the row count it measures; no deadline by design
                await asyncio.sleep(0.05)
            live = (got - first) / (time.perf_counter() - started)
            print(f"live ingest from the stream: {live:,.0f} events/s ({got - first:,} events of backlog)")

            took, said = band_import(folder, str(path), "--nats", server.url)
            rate = n / took
            assert await count() == 2 * n, "every imported event is in the store"
            print(f"import through the running store: {rate:,.0f} events/s ({took:.1f} s; {said})")
            print(f"  import / live = {rate / live:.2f}; target {TARGET:,} events/s: {'met' if rate >= TARGET else 'NOT met'}")
            took, said = band_import(folder, str(path), "--nats", server.url)
            print(f"  the same import again (all skipped): {n / took:,.0f} events/s ({said})")
        finally:
            proc.terminate()
            proc.wait(30)
            await nc.close()
    took, said = band_import(folder, str(path), "--direct")
    print(f"import into a stopped store (--direct): {n / took:,.0f} events/s ({took:.1f} s; {said})")
    took, said = band_import(folder, str(path), "--direct")
    print(f"  again (all skipped): {n / took:,.0f} events/s ({said})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events live and imported (default 1000000)")
    asyncio.run(main(parser.parse_args().events))
