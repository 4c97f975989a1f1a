"""CPU per publish of the edge's link: a task per nats-py publish against running it in place.

    .venv/bin/python bench/bench_link.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats

from band.natsserver import NatsServer
from broker.link import Link

N = 20000


async def main(url: str) -> None:
    nc = await nats.connect(url)
    link = Link(nc, lambda token, reply: None)
    for mode in ("task", "in place", "task", "in place"):
        started = time.process_time()
        for i in range(N):
            if mode == "task":  # what the link did before
                task = asyncio.ensure_future(nc.publish("x.y", b"0123456789", reply="r.1", headers={"Nats-Msg-Id": str(i)}))
                link._sending.add(task)
                task.add_done_callback(link._sent)
            else:
                link.publish("x.y", b"0123456789", "r.1", {"Nats-Msg-Id": str(i)})
            if i % 32 == 0:
                await asyncio.sleep(0)
        while link._sending:  # noqa: ASYNC110 - yield until the link's own tasks are done, as its users do; measured, no deadline
            await asyncio.sleep(0)
        await nc.flush()
        print(f"{mode:9} {(time.process_time() - started) / N * 1e6:.1f} us CPU per publish")
    await nc.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as store:
        server = NatsServer(store_dir=Path(store)).start()
        try:
            import uvloop

            uvloop.install()
            asyncio.run(main(server.url))
        finally:
            server.stop()
