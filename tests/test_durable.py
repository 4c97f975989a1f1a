"""Durable listeners: JetStream consumers acked after the function returns."""

from __future__ import annotations

import json
from typing import Any

from band import App, wire
from band._runtime.stream import ensure_stream
from band.testing import serve
from support.poll import wait_for


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
