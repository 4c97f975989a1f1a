"""10: the segments worker on generated data: Redis s:<uid> as plain Python computes it,
a changed segment pushed to the visitor's WebSocket subject, the segment-specific redirect
(docs/tutorials/10-segments.md). Uses the Redis on 127.0.0.1:6379, only the generated uids' keys."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from typing import Any

import pytest
import tutorial_truth as truth
from tutorial_store import DAYS, RECIPES, SEED, VISITORS, events, identify_people, stack, store_ready

REDIS = "redis://127.0.0.1:6379/0"
MANY = 12_000  # visitors: one row each is ~2 MB of answer, past one NATS message
MANY_UIDS = MANY + 2 * (MANY // 20)  # and one person in 20 more on two devices: a row per uid
PASS_PEAK_MB = 8  # one batch of visitors; the whole answer as dicts is ~20 MB


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
        await identify_people(RPC(lambda: nc), events())
        # a pass that began after the identities were stored wrote every visitor: emptied twice, written twice
        for _ in range(2):
            await redis.delete(*[f"s:{u}" for u in uids])
            deadline = asyncio.get_running_loop().time() + 90
            while await redis.exists(*[f"s:{u}" for u in uids]) < len(uids):
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


async def one_pass(url: str, svcs: list[Any]) -> dict[str, Any]:
    """The worker's pass (``compute``) run here, its Python memory traced; then what Redis holds."""
    import redis.asyncio as aioredis

    from band import store
    from band._core.app import reset_current, set_current
    from band._core.loader import load_service
    from band._runtime.connect import connect

    nc = await connect(url, name="segments-test", max_reconnect_attempts=0)
    app = load_service(RECIPES / "segments")
    app.nc = nc
    worker = app.module
    assert worker is not None
    token = set_current(app)
    redis = aioredis.from_url(REDIS)
    uids: list[str] = []
    try:
        await store_ready(app.rpc, svcs)
        tracemalloc.start()
        try:
            counts = await worker.compute(redis)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
        want = {row["uid"]: row["segment"] async for row in store.stream(worker.SQL, timeout__=60, by="person")}
        uids = sorted(want)
        pipe = redis.pipeline()
        for u in uids:
            pipe.hget(f"s:{u}", "segment")
        got = dict(zip(uids, [json.loads(v) if v is not None else None for v in await pipe.execute()], strict=False))
        return {"counts": counts, "peak": peak, "want": want, "got": got}
    finally:
        if uids:
            await redis.delete(*[f"s:{u}" for u in uids])
        await redis.aclose()
        reset_current(token)
        await nc.close()


@pytest.mark.slow
def test_a_pass_over_12000_visitors_writes_every_segment_in_bounded_memory() -> None:
    pytest.importorskip("redis")
    with stack(SEED, MANY, 2, []) as (url, svcs):
        out = asyncio.run(one_pass(url, svcs))
    assert len(out["want"]) == MANY_UIDS and out["counts"]["visitors"] == MANY_UIDS
    assert out["got"] == out["want"], "every visitor's segment is in Redis"
    assert out["peak"] < PASS_PEAK_MB, f"a pass peaked at {out['peak']:.1f} MB of Python memory"
