"""The panel's live tail at 2,000 events/s: does it keep up, and what does it cost?

    python bench/bench_panel_tail.py [--rate 2000] [--seconds 5]

Starts its own nats-server and ``band panel`` (a process), publishes events at
``--rate`` for ``--seconds`` twice: once with nobody watching (baseline), once with a
browser-like WebSocket on the tail. Prints what the tail counted against what was sent
(it keeps up when it counted them all), what reached the socket (sampled to 50/s), and
the panel's CPU per event with the tail open, and its share of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import nats

from band.cli.natsserver import NatsServer
from band.cli.ports import free_port

TOKEN = "bench-token-0123456789"
EVENT = b'{"key":"in.gen.track.page","service":"track","name":"page","uid":"6462464730849083392","data":{"page":{"url":"https://example.com/"}}}'


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def publish(nc: nats.aio.client.Client, rate: int, seconds: float) -> int:
    sent, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            await nc.publish("in.gen.track.page", EVENT)
            sent += 1
        await asyncio.sleep(0.005)
    await nc.flush()
    return sent


async def main(rate: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, NatsServer(store_dir=Path(tmp)) as server:
        port = free_port()
        env = {**os.environ, "PANEL_TOKEN": TOKEN}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "band", "panel", "--port", str(port), "--nats", server.url, "--edge", "http://127.0.0.1:1",
                                                    env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdout is not None
        await proc.stdout.readline()
        nc = await nats.connect(server.url)
        try:
            before = cpu_seconds(proc.pid)
            sent = await publish(nc, rate, seconds)
            await asyncio.sleep(0.5)
            idle = cpu_seconds(proc.pid) - before

            seen = received = 0
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                async with http.ws_connect(f"http://127.0.0.1:{port}/api/tail") as ws:
                    await ws.receive_json()

                    async def read() -> None:
                        nonlocal seen, received
                        async for msg in ws:
                            frame = msg.json()
                            if frame["type"] == "stats":
                                seen += frame["seen"]
                            elif frame["type"] == "event":
                                received += 1

                    reader = asyncio.ensure_future(read())
                    before = cpu_seconds(proc.pid)
                    sent_tail = await publish(nc, rate, seconds)
                    await asyncio.sleep(1.5)  # the last stats frame
                    watched = cpu_seconds(proc.pid) - before
                    reader.cancel()
        finally:
            await nc.close()
            proc.terminate()
            await proc.wait()
    print(f"rate asked: {rate}/s for {seconds:g} s")
    print(f"no watcher:   {sent} events, panel CPU {idle:.2f} s")
    print(f"tail open:    {sent_tail} events; the tail counted {seen} ({seen / max(sent_tail, 1):.3f} of them), sent {received} to the socket "
          f"({received / seconds:.0f}/s: sampled), panel CPU {watched:.2f} s = {watched / max(sent_tail, 1) * 1e6:.0f} µs per event")
    print(f"the tail at {rate}/s takes {watched / seconds:.1%} of one core (without a watcher the panel does not subscribe to events at all)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds))
