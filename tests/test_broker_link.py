"""The edge's NATS link: publishes run without a task each, and still arrive when nats-py
has to wait for its buffer to drain."""

from __future__ import annotations

from typing import Any

import nats
from support.fakes import unique
from support.poll import wait_for

from broker.link import Link, Reply


async def test_publishes_arrive_in_order_also_when_the_client_must_flush_first(nats_url: str, nc: Any) -> None:
    got: list[bytes] = []
    subject = unique("link")

    async def record(msg: Any) -> None:
        got.append(msg.data)

    sub = await nc.subscribe(subject, cb=record)
    await nc.flush()
    for pending_size in (2 * 1024 * 1024, 1):  # 1 byte: every publish waits for a flush (the task path)
        small = await nats.connect(nats_url, pending_size=pending_size)
        link = Link(small)
        try:
            got.clear()
            for i in range(50):
                link.publish(subject, str(i).encode(), headers={"X": str(i)})
            assert bool(link._sending) == (pending_size == 1)  # a task only when publish had to wait
            await wait_for(lambda: len(got) == 50, timeout=10, what="50 publishes")
            assert got == [str(i).encode() for i in range(50)]
        finally:
            await link.close()
            await small.close()
    await sub.unsubscribe()


def test_reply_has_slots() -> None:
    assert not hasattr(Reply(b"", None), "__dict__")
