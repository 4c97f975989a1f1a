"""Durable listeners: JetStream consumers acked after the function returns."""

from __future__ import annotations

import json
from typing import Any

from support.poll import wait_for

from band import App, wire
from band._runtime.stream import ensure_stream
from band.testing import serve


async def publish(js: Any, key: str, ident: str) -> None:
    await js.publish(key, wire.encode({"key": key, "id": ident, "data": {}}), headers={wire.MSG_ID_HEADER: ident})


async def test_durable_listener_retries_then_dead_letters(nats_url: str, nc: Any) -> None:
    js = nc.jetstream()
    await ensure_stream(js)
    app = App("dlqsvc")
    seen: list[tuple[str, int]] = []
    dead: list[Any] = []

    @app.expose.listener(keys=["in.gen.dlqtest"], durable=True, max_deliver=3, deliver="new")
    async def store(id: str, attempt__: int, **params: Any) -> None:
        seen.append((id, attempt__))
        if id == "bad":
            raise RuntimeError("cannot store")

    async def on_dead(msg: Any) -> None:
        dead.append(msg)

    await nc.subscribe(wire.dlq_subject("dlqsvc"), cb=on_dead)
    async with serve(app, nats_url):
        await publish(js, "in.gen.dlqtest.a", "bad")
        await publish(js, "in.gen.dlqtest.a", "good")
        await wait_for(lambda: len(dead) == 1, timeout=10, what="dead letter")
        await wait_for(lambda: ("good", 1) in seen, what="the good event, not blocked by the bad one")
    assert [a for i, a in seen if i == "bad"] == [1, 2, 3]
    assert dead[0].headers[wire.ERROR_HEADER].startswith("RuntimeError: cannot store")
    assert json.loads(dead[0].data)["id"] == "bad"


async def test_durable_listener_resumes_where_it_acked(nats_url: str, nc: Any) -> None:
    js = nc.jetstream()
    await ensure_stream(js)
    got: list[str] = []

    def make() -> App:
        app = App("resumer")

        @app.expose.listener(keys=["in.gen.resume"], durable=True, deliver="new")
        async def store(id: str, **params: Any) -> None:
            got.append(id)

        return app

    async with serve(make(), nats_url):
        await publish(js, "in.gen.resume.x", "r1")
        await wait_for(lambda: got == ["r1"], what="first event")
    await publish(js, "in.gen.resume.x", "r2")  # while the service is down
    await publish(js, "in.gen.resume.x", "r3")
    async with serve(make(), nats_url):
        await wait_for(lambda: got == ["r1", "r2", "r3"], what="events published while down")


async def test_a_slow_event_does_not_hold_back_the_others(nats_url: str, nc: Any) -> None:
    """Slots are reserved per event, not per batch: with 4 slots, one stuck event leaves
    3 for the rest of the stream, which keeps flowing past it."""
    import asyncio

    from band._runtime.options import ServiceOptions

    js = nc.jetstream()
    await ensure_stream(js)
    app = App("holsvc")
    release = asyncio.Event()
    done: list[str] = []

    @app.expose.listener(keys=["in.gen.holtest"], durable=True, deliver="new")
    async def store(id: str, **params: Any) -> None:
        if id == "slow":
            await release.wait()
        done.append(id)

    try:
        async with serve(app, nats_url, ServiceOptions(max_inflight=4)):
            await publish(js, "in.gen.holtest.a", "slow")
            for n in range(12):
                await publish(js, "in.gen.holtest.a", f"fast{n}")
            await wait_for(lambda: len(done) == 12, timeout=10, what="every fast event while the slow one waits")
            assert "slow" not in done
            release.set()
            await wait_for(lambda: "slow" in done, what="the slow event, once released")
    finally:
        await js.delete_consumer(wire.STREAM, "holsvc_store")


async def test_long_work_past_ack_wait_is_not_redelivered(nats_url: str, nc: Any) -> None:
    """A call longer than ack_wait (but within call_timeout) tells the server it is still
    working: it is neither cut nor handed to the server's redelivery."""
    import asyncio

    js = nc.jetstream()
    await ensure_stream(js)
    app = App("longsvc")
    attempts: list[tuple[str, int]] = []
    finished: list[str] = []

    @app.expose.listener(keys=["in.gen.longtest"], durable=True, ack_wait=1, deliver="new")
    async def store(id: str, attempt__: int, **params: Any) -> None:
        attempts.append((id, attempt__))
        await asyncio.sleep(2.5)
        finished.append(id)

    try:
        async with serve(app, nats_url):
            await publish(js, "in.gen.longtest.a", "long1")
            await wait_for(lambda: finished == ["long1"], timeout=10, what="the long call finished")

            async def acked() -> bool:
                info = await js.consumer_info(wire.STREAM, "longsvc_store")
                return bool(info.num_ack_pending == 0 and info.num_pending == 0)

            await wait_for(acked, what="the long event acked")
        assert attempts == [("long1", 1)]
    finally:
        await js.delete_consumer(wire.STREAM, "longsvc_store")


async def test_a_pull_refused_by_the_server_is_retried_after_a_pause(nats_url: str, nc: Any) -> None:
    """The consumer deleted under a running listener: its pull requests are answered with
    a status, not events. It asks again after a pause (not in a tight loop), and takes
    events again once the consumer is back."""
    from band._runtime.durable import DurableListener

    js = nc.jetstream()
    await ensure_stream(js)
    app = App("gonesvc")
    got: list[str] = []

    @app.expose.listener(keys=["in.gen.gonetest"], durable=True, deliver="new")
    async def store(id: str, **params: Any) -> None:
        got.append(id)

    pulls: list[Any] = []

    async def seen(msg: Any) -> None:
        pulls.append(msg)

    await nc.subscribe(wire.pull_subject("gonesvc_store"), cb=seen)
    async with serve(app, nats_url) as service:
        await publish(js, "in.gen.gonetest.a", "before")
        await wait_for(lambda: got == ["before"], what="an event while the consumer is there")
        await js.delete_consumer(wire.STREAM, "gonesvc_store")
        refused_from = len(pulls)
        await wait_for(lambda: len(pulls) >= refused_from + 3, timeout=10, what="pulls retried after the refusal")
        assert len(pulls) < refused_from + 10  # about one a second, not thousands
        listener: DurableListener = service._durables[0]
        await listener.make_consumer()  # the consumer back (as a restart of the service would make it)
        await publish(js, "in.gen.gonetest.a", "after")
        await wait_for(lambda: got == ["before", "after"], timeout=10, what="events again once the consumer is back")
    await js.delete_consumer(wire.STREAM, "gonesvc_store")
