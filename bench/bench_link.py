"""CPU per publish of the edge's link: a task per nats-py publish against running it in place.

    .venv/bin/python bench/bench_link.py
"""
import asyncio, time, sys, tempfile
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
import nats
from band.natsserver import NatsServer
from broker.link import Link
async def main(url):
    nc = await nats.connect(url)
    link = Link(nc, lambda t, r: None)
    N = 20000
    for mode in ("task", "sync", "task", "sync"):
        t0 = time.process_time()
        for i in range(N):
            if mode == "task":
                task = asyncio.ensure_future(nc.publish("x.y", b"0123456789", reply="r.1", headers={"Nats-Msg-Id": str(i)}))
                link._sending.add(task); task.add_done_callback(link._sent)
            else:
                link.publish("x.y", b"0123456789", "r.1", {"Nats-Msg-Id": str(i)})
            if i % 32 == 0:
                await asyncio.sleep(0)
        while link._sending:
            await asyncio.sleep(0)
        await nc.flush()
        print(mode, f"{(time.process_time() - t0) / N * 1e6:.1f} us per publish")
    await nc.close()
with tempfile.TemporaryDirectory() as d:
    s = NatsServer(store_dir=__import__("pathlib").Path(d)).start()
    try:
        import uvloop; uvloop.install()
        asyncio.run(main(s.url))
    finally:
        s.stop()
