"""10: the segments worker on generated data: Redis s:<uid> as plain Python computes it,
a changed segment pushed to the visitor's WebSocket subject, the segment-specific redirect
(docs/tutorials/10-segments.md). Uses the Redis on 127.0.0.1:6379, only the generated uids' keys."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import tutorial_truth as truth
from tutorial_store import DAYS, RECIPES, SEED, VISITORS, events, stack, store_ready

REDIS = "redis://127.0.0.1:6379/0"


async def scenario(url: str, svcs: list[Any], uids: list[str]) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from band import wire
    from band._core.rpc import RPC
    from band._runtime.connect import connect
    from band.response import from_wire

    nc = await connect(url, name="segments-test", max_reconnect_attempts=0)
    redis = aioredis.from_url(REDIS)
    out: dict[str, Any] = {}
    try:
        await store_ready(RPC(lambda: nc), svcs)
        deadline = asyncio.get_running_loop().time() + 90
        while await redis.exists(*[f"s:{u}" for u in uids]) < len(uids):  # the first pass wrote every visitor
            assert asyncio.get_running_loop().time() < deadline, "segments were not written"
            await asyncio.sleep(0.2)
        pipe = redis.pipeline()
        for u in uids:
            pipe.hgetall(f"s:{u}")
        out["hashes"] = dict(zip(uids, await pipe.execute(), strict=True))
        # a changed segment is pushed: make one look stale, the next pass corrects and pushes it
        target = uids[0]
        pushed: asyncio.Queue[Any] = asyncio.Queue()

        async def got(msg: Any) -> None:
            await pushed.put(json.loads(msg.data))

        sub = await nc.subscribe(wire.ws_subject(target), cb=got)
        await nc.flush()
        await redis.hset(f"s:{target}", "segment", json.dumps("stale"))
        out["push"] = await asyncio.wait_for(pushed.get(), 30)
        await sub.unsubscribe()
        # the loop closes: the offer handler redirects by segment, from data.stored or from Redis
        answers = {}
        for uid, stored in (("0000000000", {"segment": "champion"}), (target, None)):
            message = {"key": "in.gen.segments.offer", "service": "segments", "name": "offer", "channel": "http", "projectId": 0,
                       "uid": uid, "td": {}, "data": {"stored": stored} if stored else {}, "id": "1", "time": 1}
            reply = await nc.request(wire.handle_subject("in.gen.segments.offer"), wire.encode(message), timeout=5)
            answers[uid] = from_wire(json.loads(reply.data)).to_wire()
        out["offers"] = answers
        return out
    finally:
        await redis.delete(*[f"s:{u}" for u in uids])
        await redis.aclose()
        await nc.close()


def test_segments_in_redis_pushed_on_change_and_used_by_a_handler() -> None:
    pytest.importorskip("redis")
    want = truth.segments(events())
    uids = sorted(want)
    with stack(SEED, VISITORS, DAYS, [RECIPES / "segments"], {"REDIS_URL": REDIS, "SEGMENTS_INTERVAL": "1"}) as (url, svcs):
        got = asyncio.run(scenario(url, svcs, uids))
    for uid in uids:
        stored = {k.decode(): json.loads(v) for k, v in got["hashes"][uid].items()}
        assert stored["segment"] == want[uid]["segment"] and stored["rfm"] == want[uid]["rfm"], uid
        assert stored["revenue"] == pytest.approx(want[uid]["revenue"])
    kinds = {w["segment"] for w in want.values()}
    assert {"champion", "buyer", "cart_abandoner", "lead", "new"} <= kinds  # the rules all fire on demo data
    assert got["push"] == {"segment": want[uids[0]]["segment"], "previous": "stale"}
    offers = got["offers"]
    assert offers["0000000000"]["location"] == "https://shop.example.com/vip"
    expected = {"champion": "https://shop.example.com/vip", "buyer": "https://shop.example.com/thanks-again",
                "cart_abandoner": "https://shop.example.com/checkout?coupon=COMEBACK10", "lead": "https://shop.example.com/pricing?trial=1"}
    assert offers[uids[0]]["location"] == expected.get(want[uids[0]]["segment"], "https://shop.example.com/")
