"""The documented API on a real nats-server: handlers, RPC, enrichers, listeners."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest
from support.poll import wait_for

import band
from band import App, response, wire
from band.response import ErrorResponse, PixelResponse, RedirectResponse, from_wire
from band.testing import serve


async def handle(nc: Any, key: str, message: dict[str, Any] | None = None, timeout: float = 2.0) -> Any:
    msg = await nc.request(wire.handle_subject(key), wire.encode(message or {"key": key}), timeout=timeout)
    failure = wire.error_from_headers(msg.headers)
    return failure if failure else from_wire(json.loads(msg.data))


def message(service: str, name: str, **data: Any) -> dict[str, Any]:
    return {"key": f"in.gen.{service}.{name}", "service": service, "name": name, "channel": "http",
            "projectId": 0, "uid": "6462464730849083392", "td": {"ip": "1.2.3.4", "ua": "UA"},
            "data": data, "id": "6462464730849083393", "time": 1540771658623}


async def test_documented_handlers(nats_url: str, nc: Any) -> None:
    app = App("docs")
    state = {"counter": 0}

    @app.expose.handler(name="*", alias="go")
    async def go(name: str, **params: Any) -> Any:
        return response.redirect(f"https://www.yandex.ru/search/?lr=213&text={name}")

    @app.expose.handler()
    async def pix(**params: Any) -> Any:
        state["counter"] += 1
        return response.pixel()

    @app.expose.handler()
    async def error(**params: Any) -> Any:
        return response.error("Some F*cking error")

    @app.expose.handler()
    async def get_state(**params: Any) -> Any:
        return response.data(state)

    @app.expose.handler()
    async def long_method(**params: Any) -> Any:
        return response(params["data"])

    @app.expose.handler()
    async def alias(**params: Any) -> Any:
        return {"message": "you are catch me!"}

    @app.expose.handler()
    async def nothing(**params: Any) -> None:
        return None

    async with serve(app, nats_url):
        redirect = await handle(nc, "in.gen.go.search", message("go", "search"))
        assert redirect == RedirectResponse(location="https://www.yandex.ru/search/?lr=213&text=search", statusCode=302)
        assert await handle(nc, "in.gen.docs.pix", message("docs", "pix")) == PixelResponse()
        assert state["counter"] == 1
        err = await handle(nc, "in.gen.docs.error", message("docs", "error"))
        assert isinstance(err, ErrorResponse) and (err.statusCode, err.message) == (500, "Some F*cking error")
        assert (await handle(nc, "in.gen.docs.get_state", message("docs", "get_state"))).data == {"counter": 1}
        assert (await handle(nc, "in.gen.docs.long_method", message("docs", "long_method", a=1))).data == {"a": 1}
        assert (await handle(nc, "in.gen.docs.alias", message("docs", "alias"))).data == {"message": "you are catch me!"}
        assert (await handle(nc, "in.gen.docs.nothing", message("docs", "nothing"))).data == {}


async def test_specific_name_wins_over_wildcard(nats_url: str, nc: Any) -> None:
    app = App("wild")

    @app.expose.handler(name="*")
    async def anything(name: str, **params: Any) -> Any:
        return {"wildcard": name}

    @app.expose.handler(name="exact")
    async def exact(**params: Any) -> Any:
        return {"exact": True}

    async with serve(app, nats_url):
        for _ in range(10):
            assert (await handle(nc, "in.gen.wild.exact", message("wild", "exact"))).data == {"exact": True}
        assert (await handle(nc, "in.gen.wild.other", message("wild", "other"))).data == {"wildcard": "other"}


async def test_handler_exception_is_500_with_a_reference_not_its_text(nats_url: str, nc: Any) -> None:
    app = App("boom")

    @app.expose.handler()
    async def fail(**params: Any) -> Any:
        raise RuntimeError("disk on fire")

    async with serve(app, nats_url):
        sent = message("boom", "fail")
        code, description = await handle(nc, "in.gen.boom.fail", sent)
        # the text stays in the log; the caller gets the message id to find it there
        assert code == 500 and "disk on fire" not in description and "Traceback" not in description
        assert f"reference {sent['id']}" in description
        # garbage body: a micro error reply, and the service keeps answering
        msg = await nc.request(wire.handle_subject("in.gen.boom.fail"), b"\xff not json", timeout=2)
        assert wire.error_from_headers(msg.headers)[0] == 400
        code, _ = await handle(nc, "in.gen.boom.fail", message("boom", "fail"))
        assert code == 500


async def test_rpc_request_notify_and_failures(nats_url: str) -> None:
    server, client = App("calc"), App("caller")
    seen: list[Any] = []

    @server.expose()
    async def add(a: int, b: int) -> Any:
        return response.data(a + b)

    @server.expose()
    async def plain(**params: Any) -> Any:
        return params

    @server.expose()
    async def pixel(**params: Any) -> Any:
        return response.pixel(data={"x": 1})

    @server.expose()
    async def broken(**params: Any) -> Any:
        raise ValueError("bad thing")

    @server.expose()
    async def slow(**params: Any) -> Any:
        await asyncio.sleep(1)
        return 1

    @server.expose()
    async def remember(**params: Any) -> None:
        seen.append(params)

    @server.expose()
    async def null(**params: Any) -> None:
        return None

    @server.expose()
    async def named(name: str, service: str) -> list[str]:
        return [name, service]

    @server.expose()
    async def refuse(**params: Any) -> None:
        raise band.RPCError("already there", 409)

    @server.expose()
    async def swapped(**params: Any) -> None:
        raise band.RPCError(404, "not found")  # type: ignore[arg-type]  # arguments swapped

    async with serve(server, nats_url), serve(client, nats_url):
        rpc = client.rpc
        assert await rpc.request("calc", "add", a=2, b=3) == 5
        assert await rpc.request("calc", "plain", x=[1, 2]) == {"x": [1, 2]}
        assert await rpc.request("calc", "pixel") == PixelResponse(data={"x": 1})
        assert await rpc.request("calc", "null") is None, "None means the remote returned null"
        assert await rpc.request("calc", "named", name="n", service="s") == ["n", "s"]
        with pytest.raises(band.RemoteError) as refused:
            await rpc.request("calc", "refuse")
        assert (refused.value.code, refused.value.message) == (409, "already there")
        with pytest.raises(band.RemoteError) as swapped:  # an answer, not a timeout
            await rpc.request("calc", "swapped", timeout__=5)
        assert swapped.value.code == 500
        with pytest.raises(band.RemoteError) as remote:
            await rpc.request("calc", "broken")
        # the caller learns that it failed and the reference the service logged it under, never the text
        assert remote.value.code == 500 and "bad thing" not in remote.value.message
        assert remote.value.message.startswith("internal error in the service (reference ")
        assert isinstance(remote.value, band.RPCError)
        with pytest.raises(band.RemoteError) as missing:
            await rpc.request("calc", "add", a=1)
        assert missing.value.code == 400 and "b" in missing.value.message
        with pytest.raises(band.RPCTimeout):
            await rpc.request("calc", "slow", timeout__=0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(band.ServiceUnavailable):
            await rpc.request("nosuch", "thing", timeout__=5)
        assert loop.time() - started < 2.5, "no responders must fail at once, not after the timeout"
        await rpc.notify("calc", "remember", k="v")
        await wait_for(lambda: seen == [{"k": "v"}], what="notify delivered")


async def test_enricher_answers_once_with_props(nats_url: str, nc: Any) -> None:
    app = App("uaparser")
    calls: list[dict[str, Any]] = []

    @app.expose.enricher(props={"ip": "td.ip", "ua": "td.ua", "uid": "uid", "nope": "td.missing.deep"}, keys=["in.gen.track"])
    async def enrich(ip: str, ua: str, uid: str, **params: Any) -> Any:
        calls.append({"ip": ip, "ua": ua, "uid": uid, **params})
        return {"os_family": "Mac OS X"}

    async with serve(app, nats_url):
        msg = await nc.request(wire.enrich_subject("in.gen.track.page"), wire.encode(message("track", "page")), timeout=2)
        assert msg.headers[wire.SERVICE_HEADER] == "uaparser"
        assert json.loads(msg.data) == {"os_family": "Mac OS X"}
        assert calls == [{"ip": "1.2.3.4", "ua": "UA", "uid": "6462464730849083392", "nope": None, "key": "in.gen.track.page"}]
        # revision 2: the edge sends only the props' values, by dot-path
        small = wire.enrich_request(message("track", "page"), ("td.ip", "td.ua", "uid"))
        assert set(small) == {"key", "id", wire.ENRICH_PROPS_FIELD}
        msg = await nc.request(wire.enrich_subject("in.gen.track.page"), wire.encode(small), timeout=2)
        assert json.loads(msg.data) == {"os_family": "Mac OS X"}
        assert calls[1] == calls[0]
        with pytest.raises(nats.errors.NoRespondersError):  # whole-token prefix: tracker is not track
            await nc.request(wire.enrich_subject("in.gen.tracker.x"), wire.encode(message("tracker", "x")), timeout=1)


async def test_failing_enricher_replies_error(nats_url: str, nc: Any) -> None:
    app = App("flaky")

    @app.expose.enricher(keys=["in.gen.track"])
    async def enrich(**params: Any) -> Any:
        raise KeyError("nope")

    async with serve(app, nats_url):
        msg = await nc.request(wire.enrich_subject("in.gen.track.page"), wire.encode(message("track", "page")), timeout=2)
        assert wire.error_from_headers(msg.headers)[0] == 500
        assert msg.headers[wire.SERVICE_HEADER] == "flaky"


async def test_listeners_get_final_messages(nats_url: str, nc: Any) -> None:
    app = App("listen")
    every: list[str] = []
    narrow: list[str] = []

    @app.expose.listener()
    async def broadcast(**params: Any) -> None:
        every.append(params["key"])

    @app.expose.listener(keys=["in.gen.track"])
    async def tracks(key: str, **params: Any) -> None:
        narrow.append(key)

    async with serve(app, nats_url):
        for key in ("in.gen.track.page", "in.gen.pixel.x"):
            await nc.publish(key, wire.encode(message(*key.split(".")[2:])))
        await wait_for(lambda: len(every) == 2 and narrow == ["in.gen.track.page"], what="listeners")
        assert sorted(every) == ["in.gen.pixel.x", "in.gen.track.page"]


async def test_discovery_info_and_stats(nats_url: str, nc: Any) -> None:
    app = App("disco")

    @app.expose.handler(path="/x/:id", timeout=500)
    async def show(**params: Any) -> Any:
        return {}

    @app.expose.enricher(props={"ip": "td.ip"}, keys=["in.gen.track", "in.gen.pixel"])
    async def enrich(ip: str, **params: Any) -> Any:
        return None

    async with serve(app, nats_url) as svc:
        info = json.loads((await nc.request("$SRV.INFO.disco", b"", timeout=2)).data)
        assert info["type"] == "io.nats.micro.v1.info_response" and info["name"] == "disco"
        handler = next(e for e in info["endpoints"] if e["metadata"]["role"] == "handler")
        assert handler["subject"] == "band.handle.in.gen.disco.show"
        assert handler["queue_group"] == "disco"
        assert handler["metadata"]["path"] == "/x/:id" and handler["metadata"]["timeout"] == "500"
        enrichers = [e for e in info["endpoints"] if e["metadata"]["role"] == "enricher"]
        assert {e["subject"] for e in enrichers} == {"band.enrich.in.gen.track.>", "band.enrich.in.gen.pixel.>"}
        assert json.loads(enrichers[0]["metadata"]["keys"]) == ["in.gen.track", "in.gen.pixel"]
        assert any(e["metadata"]["role"] == "rpc" and e["subject"] == "band.rpc.disco.show" for e in info["endpoints"])
        ping = json.loads((await nc.request(f"$SRV.PING.disco.{svc.identity.id}", b"", timeout=2)).data)
        assert ping["type"] == "io.nats.micro.v1.ping_response"
        await handle(nc, "in.gen.disco.show", message("disco", "show"))
        stats = json.loads((await nc.request("$SRV.STATS.disco", b"", timeout=2)).data)
        shown = next(e for e in stats["endpoints"] if e["subject"] == "band.handle.in.gen.disco.show")
        assert shown["num_requests"] == 1 and shown["num_errors"] == 0 and shown["processing_time"] > 0


async def test_requests_run_concurrently(nats_url: str) -> None:
    server, client = App("sleepy"), App("many")

    @server.expose()
    async def nap(**params: Any) -> int:
        await asyncio.sleep(0.3)
        return 1

    async with serve(server, nats_url), serve(client, nats_url):
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(client.rpc.request("sleepy", "nap") for _ in range(50)))
        assert results == [1] * 50
        # one at a time would need 15 s; the bound is generous to stay clear of machine noise
        assert loop.time() - started < 5


async def test_replicas_share_the_load(nats_url: str) -> None:
    seen: list[str] = []

    def replica(tag: str) -> App:
        app = App("replicated")

        @app.expose()
        async def who(**params: Any) -> str:
            seen.append(tag)
            return tag

        return app

    caller = App("asker")
    async with serve(replica("a"), nats_url), serve(replica("b"), nats_url), serve(caller, nats_url):
        await asyncio.gather(*(caller.rpc.request("replicated", "who") for _ in range(60)))
    assert len(seen) == 60, "each request answered exactly once"
    assert set(seen) == {"a", "b"}


async def test_a_call_past_its_time_limit_is_cut(nats_url: str) -> None:
    app, caller = App("stuck", settings={"call_timeout": 0.2}), App("stuck-caller")
    cancelled: list[bool] = []

    @app.expose()
    async def forever(**params: Any) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    @app.expose()
    async def quick(**params: Any) -> int:
        return 1

    async with serve(app, nats_url), serve(caller, nats_url):
        with pytest.raises(band.RemoteError) as cut:
            await caller.rpc.request("stuck", "forever", timeout__=10)
        assert cut.value.code == 504 and "0.2s" in cut.value.message
        assert cancelled == [True]
        assert await caller.rpc.request("stuck", "quick") == 1


async def test_a_failed_start_undoes_itself(nats_url: str, nc: Any) -> None:
    """A durable consumer that cannot be created (its deliver policy changed) fails the start:
    the RPC subscription made before it is gone and app.nc is unset."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from band._runtime.connect import connect
    from band._runtime.service import Service
    from band._runtime.stream import ensure_stream

    js = nc.jetstream()
    await ensure_stream(js)
    await js.add_consumer(wire.STREAM, ConsumerConfig(
        durable_name="halfway_store", ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW,
        filter_subject="in.gen.halfway.>"))
    app = App("halfway")

    @app.expose()
    async def ping() -> dict[str, bool]:
        return {"pong": True}

    @app.expose.listener(keys=["in.gen.halfway"], durable=True, deliver="all")
    async def store(**message: Any) -> None:
        pass

    shared = await connect(nats_url, name="halfway")
    try:
        with pytest.raises(band.ConfigError, match="halfway_store"):
            await Service(app, shared).start()
        assert app.nc is None
        await shared.flush()
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request(wire.rpc_subject("halfway", "ping"), b"{}", timeout=1)
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request(f"{wire.SRV_PREFIX}.PING.halfway", b"", timeout=1)
    finally:
        await shared.close()
        await js.delete_consumer(wire.STREAM, "halfway_store")
