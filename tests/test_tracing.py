"""OpenTelemetry: one hit through the edge and services is one trace with the expected tree.

Real nats-server, the real edge, real services in this process; spans go to the SDK's
in-memory exporter.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.fakes import enrichers_seen, routed, running_edge, unique
from support.poll import wait_for

from band import App, response, tracing, wire
from band._core import log
from band.cli.ports import free_port
from band.testing import serve

UID = "6462464730849083392"
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.shutdown()
        provider.shutdown()


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_one_hit_is_one_trace(spans: InMemorySpanExporter, nats_url: str) -> None:
    track, geo, ua, users, audit = unique("track"), unique("geo"), unique("ua"), unique("users"), unique("audit")
    key = f"in.gen.{track}.page"
    heard: list[dict[str, Any]] = []
    lines = io.StringIO()

    app = App(track)

    @app.expose.handler(timeout=2000)
    async def page(uid: str, **message: Any) -> Any:
        app.logger.info("handling the page")
        logging.getLogger("test.tracing").warning("a library line inside the span")
        return response.data({"name": await app.rpc.request(users, "name", uid=uid)})

    users_app = App(users)

    @users_app.expose()
    async def name(uid: str) -> str:
        return f"user {uid}"

    audit_app = App(audit)

    @audit_app.expose.listener(keys=[f"in.gen.{track}"], durable=True)
    async def keep(**message: Any) -> None:
        heard.append(message)

    geo_app = App(geo)

    @geo_app.expose.enricher(keys=[key])
    async def locate(**_: Any) -> Any:
        return {"country": "NL"}

    ua_app = App(ua)

    @ua_app.expose.enricher(keys=[key])
    async def parse(**_: Any) -> Any:
        return {"os": "Linux"}

    log.configure({"JSON_LOGS": "1"}, stream=lines)
    try:
        async with (
            serve(app, nats_url), serve(users_app, nats_url), serve(audit_app, nats_url),
            serve(geo_app, nats_url), serve(ua_app, nats_url), running_edge(nats_url) as (client, edge),
        ):
            await routed(edge, key)
            await enrichers_seen(edge, key, {geo, ua})
            parent = f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"
            resp = await client.get(f"/{track}/page", headers={"Cookie": f"uid={UID}", "traceparent": parent})
            assert resp.status == 200
            assert await resp.json() == {"name": f"user {UID}"}
            await wait_for(lambda: len(heard) == 1, timeout=10, what="the durable listener got the event")
            await wait_for(lambda: "event " + key in _by_name(spans.get_finished_spans()), what="the delivery span ended")
    finally:
        log.configure({})

    finished = spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in finished} == {PARENT_TRACE}, "one trace, the caller's"
    s = _by_name(finished)
    hit = s[f"hit {key}"]
    assert hit.attributes is not None and hit.attributes["http.response.status_code"] == 200
    assert hit.attributes["band.key"] == key
    assert _parent(hit) == 0x00F067AA0BA902B7
    enrich = s[f"enrich {key}"]
    assert _parent(enrich) == hit.context.span_id
    for service, function in ((geo, "locate"), (ua, "parse")):
        edge_side = s[f"enricher {service}"]
        assert _parent(edge_side) == enrich.context.span_id
        assert edge_side.attributes is not None and edge_side.attributes["band.outcome"] == "answered"
        assert _parent(s[f"enricher {function}"]) is not None
    service_enrich = [x for x in finished if x.name == f"enrich {key}" and x is not enrich]
    assert len(service_enrich) == 2 and all(_parent(x) == enrich.context.span_id for x in service_enrich)
    assert {_parent(s["enricher locate"]), _parent(s["enricher parse"])} == {x.context.span_id for x in service_enrich}

    handles = [x for x in finished if x.name == f"handle {key}"]
    edge_handle = next(x for x in handles if _parent(x) == hit.context.span_id)
    served = next(x for x in handles if _parent(x) == edge_handle.context.span_id)
    call = s[f"call {users}.name"]
    assert _parent(call) == served.context.span_id
    assert _parent(s[f"rpc {users}.name"]) == call.context.span_id

    publish = s[f"publish {key}"]
    assert _parent(publish) == hit.context.span_id
    delivery = s["event " + key]
    assert _parent(delivery) == publish.context.span_id
    assert delivery.attributes is not None and delivery.attributes["band.delivery_attempt"] == 1
    assert _parent(s["listener keep"]) == delivery.context.span_id

    assert heard[0][wire.TRACE_ID_FIELD] == PARENT_TRACE, "the stored event carries the trace id"
    logged = [json.loads(line) for line in lines.getvalue().splitlines() if "handling the page" in line]
    assert logged and logged[0]["trace_id"] == PARENT_TRACE
    assert logged[0]["span_id"] == format(served.context.span_id, "016x")
    library = [json.loads(line) for line in lines.getvalue().splitlines() if "a library line" in line]
    assert library and library[0]["trace_id"] == PARENT_TRACE


async def test_late_enricher_and_new_trace(spans: InMemorySpanExporter, nats_url: str) -> None:
    """No traceparent: the edge starts a trace; an enricher past the deadline is 'late'."""
    track, slow = unique("track"), unique("slow")
    key = f"in.gen.{track}.page"
    slow_app = App(slow)

    @slow_app.expose.enricher(keys=[key])
    async def dawdle(**_: Any) -> Any:
        await asyncio.sleep(1.0)
        return {"x": 1}

    async with serve(slow_app, nats_url), running_edge(nats_url, enrich_timeout_ms=50) as (client, edge):
        await enrichers_seen(edge, key, {slow})
        resp = await client.get(f"/{track}/page")
        assert resp.status == 200
        await wait_for(lambda: f"hit {key}" in _by_name(spans.get_finished_spans()), what="the hit span")
    s = _by_name(spans.get_finished_spans())
    assert s[f"hit {key}"].parent is None
    late = s[f"enricher {slow}"]
    assert late.attributes is not None and late.attributes["band.outcome"] == "late"


def test_off_without_otel_env() -> None:
    """No OTEL_* variables: nothing switches on, and band imports without OpenTelemetry loaded."""
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not tracing.wanted({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    code = "import band, broker.app, sys; assert not any(m.startswith('opentelemetry') for m in sys.modules), 'loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_band_run_exports_over_otlp(tmp_path: Path, nats_url: str) -> None:
    """A real `band run` with OTEL_EXPORTER_OTLP_ENDPOINT sends its spans to a collector (here, a
    real HTTP server decoding OTLP protobuf), continuing the caller's traceparent."""
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[tuple[str, str]] = []

    async def collect(request: web.Request) -> web.Response:
        body = ExportTraceServiceRequest.FromString(await request.read())
        for resource in body.resource_spans:
            for scope in resource.scope_spans:
                received.extend((span.name, span.trace_id.hex()) for span in scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    name = unique("exported")
    (tmp_path / f"{name}.py").write_text("from band import expose\n\n@expose()\nasync def hello() -> str:\n    return 'hi'\n")
    env = {**os.environ, "NATS_URL": nats_url, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "band", "run", str(tmp_path / f"{name}.py"), env=env)
    nc = await nats.connect(nats_url)
    try:
        parent = {"traceparent": f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"}

        async def answered() -> bool:
            try:
                await nc.request(wire.rpc_subject(name, "hello"), b"{}", timeout=0.5, headers=parent)
                return True
            except Exception:
                return False

        await wait_for(answered, timeout=20, what="the service answers")
        await wait_for(lambda: (f"rpc {name}.hello", PARENT_TRACE) in received, timeout=20, what="the span at the collector")
    finally:
        await nc.close()
        proc.terminate()
        assert await proc.wait() == 0
        await runner.cleanup()


async def test_websocket_frames_are_hits_too(spans: InMemorySpanExporter, nats_url: str) -> None:
    track = unique("wstrack")
    key = f"in.gen.{track}.page"
    app = App(track)

    @app.expose.handler()
    async def page(**_: Any) -> Any:
        return response.data({"ok": True})

    async with serve(app, nats_url), running_edge(nats_url) as (client, edge):
        await routed(edge, key)
        async with client.ws_connect("/wss?uid=1234567890123") as ws:
            await ws.send_str(json.dumps({"service": track, "name": "page", "id__": 1}))
            assert json.loads((await ws.receive()).data)["data"] == {"ok": True}
        await wait_for(lambda: f"hit {key}" in _by_name(spans.get_finished_spans()), what="the frame's hit span")
    s = _by_name(spans.get_finished_spans())
    hit = s[f"hit {key}"]
    assert hit.attributes is not None and hit.attributes["http.request.method"] == "WS"
    served = [x for x in spans.get_finished_spans() if x.name == f"handle {key}" and x.kind.name == "SERVER"]
    assert served and served[0].context.trace_id == hit.context.trace_id


def test_without_opentelemetry_installed_band_says_so_and_runs_on() -> None:
    """OTEL_* set but the extra missing: a clear line on stderr naming the fix, no crash."""
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from band import tracing
        assert tracing.setup("svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is False
        assert not tracing.ON
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'band[trace]'" in result.stderr


async def test_bad_trace_headers_start_a_new_trace_quietly(
    spans: InMemorySpanExporter, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    track = unique("badtp")
    key = f"in.gen.{track}.page"
    async with running_edge(nats_url) as (client, _edge):
        for headers in ({"traceparent": "x" * 5000}, {"traceparent": "00-zz-01"},
                        {"traceparent": f"00-{PARENT_TRACE}-00f067aa0ba902b7-01", "tracestate": "!!!," * 200}):
            resp = await client.get(f"/{track}/page", headers=headers)
            assert resp.status == 200
    hits = [s for s in spans.get_finished_spans() if s.name == f"hit {key}"]
    assert len(hits) == 3
    assert hits[0].parent is None and hits[1].parent is None
    assert hits[2].parent is not None and format(hits[2].context.trace_id, "032x") == PARENT_TRACE
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING]


async def test_an_incoming_trace_is_carried_with_tracing_off(nats_url: str) -> None:
    """No OpenTelemetry configured: a hit's W3C traceparent still travels with the stored
    event (and with the pipeline's requests, by the same hooks), and the event's trace_id
    names the caller's trace; an absent or invalid one adds nothing."""
    assert not tracing.ON
    svc = unique("carry")
    parent = f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"
    nc = await nats.connect(nats_url)
    try:
        events = await nc.subscribe(f"in.gen.{svc}.>")
        await nc.flush()
        async with running_edge(nats_url) as (client, _):
            async with client.get(f"/{svc}/page", headers={"traceparent": parent, "tracestate": "vendor=1"}) as resp:
                assert resp.status == 200
            carried = await events.next_msg(timeout=10)
            assert carried.headers[wire.TRACEPARENT_HEADER] == parent and carried.headers[wire.TRACESTATE_HEADER] == "vendor=1"
            assert json.loads(carried.data)[wire.TRACE_ID_FIELD] == PARENT_TRACE
            for headers in ({}, {"traceparent": "00-zz-01"}, {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},
                            {"traceparent": f"ff-{PARENT_TRACE}-00f067aa0ba902b7-01"}):
                async with client.get(f"/{svc}/page", headers=headers) as resp:
                    assert resp.status == 200
                plain = await events.next_msg(timeout=10)
                assert wire.TRACEPARENT_HEADER not in (plain.headers or {}), headers
                assert wire.TRACE_ID_FIELD not in json.loads(plain.data), headers
    finally:
        await nc.close()
