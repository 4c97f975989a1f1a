"""The repository's nats.conf on a real nats-server: the pipeline works under it, and
each credential is held to what it needs (issue 4 "Real deployment files", issue 5
"Nobody let in")."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest
from nats.aio.client import Client
import yaml

from band import App, response, wire
from band._core.rpc import RPC
from band._runtime.connect import connect
from band.response import from_wire
from band.natsserver import NatsServer, free_port
from band._runtime.stream import StreamLimits, ensure_stream
from band.testing import serve
from support.deploy import NATS_CONF, REPO, Recorder, check_conf, client, conf_server, conf_users, eventually, inbox_of, password_env, url

pytestmark = pytest.mark.skipif(not NATS_CONF.exists(), reason="nats.conf not written yet")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return password_env()


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with conf_server(tmp_path_factory.mktemp("conf"), env) as srv:
        yield srv


def message(service: str, name: str, mid: str, **data: Any) -> dict[str, Any]:
    return {"key": f"in.gen.{service}.{name}", "service": service, "name": name, "channel": "http", "projectId": 0,
            "uid": "6462464730849083392", "td": {"ip": "109.252.93.158", "ua": "UA"}, "data": data,
            "id": mid, "time": 1540771658623}


def apps(seen: dict[str, list[Any]]) -> list[App]:
    """Four services named as nats.conf users: enricher, handler calling RPC, RPC, listeners."""
    geoip, calls, crm, writer = App("geoip"), App("calltracking"), App("crm"), App("eventwriter")

    @geoip.expose.enricher(props={"ip": "td.ip"}, keys=["in.gen.calltracking"])
    async def locate(ip: str, **_: Any) -> Any:
        return {"country": "RU", "ip": ip}

    @calls.expose.handler()
    async def call(data: dict[str, Any], **_: Any) -> Any:
        user = await calls.rpc.request("crm", "by_phone", phone=data.get("phone"))
        return response.data({"user": user, "geo": data.get("geoip")})

    @crm.expose()
    async def by_phone(phone: str) -> Any:
        return {"name": "Ann", "phone": phone}

    @writer.expose.listener(keys=["in.gen.calltracking"], durable=True)
    async def store(**msg: Any) -> None:
        seen["durable"].append(msg["id"])

    @writer.expose.listener(keys=["in.gen.calltracking"])
    async def watch(**msg: Any) -> None:
        seen["plain"].append(msg["id"])

    return [geoip, calls, crm, writer]


async def test_conf_is_valid_and_needs_every_password(env: dict[str, str]) -> None:
    ok = check_conf(NATS_CONF, env)
    assert ok.returncode == 0, ok.stderr
    users = conf_users()
    assert users["edge"] == "EDGE_PASSWORD" and "admin" in users
    assert {"svc_geoip", "svc_calltracking", "svc_crm", "svc_eventwriter"} <= set(users)
    # no silent default: a missing password variable stops the server
    missing = check_conf(NATS_CONF, env, unset=["EDGE_PASSWORD"])
    assert missing.returncode != 0 and "EDGE_PASSWORD" in missing.stderr


async def test_anonymous_and_wrong_password_refused(server: NatsServer, env: dict[str, str]) -> None:
    for refused in (server.url, f"nats://edge:wrong@127.0.0.1:{server.port}"):
        nc = Client()
        with pytest.raises(Exception):
            await nc.connect(refused, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
        await nc.close()  # nats-py keeps a refused connection's socket open until closed


@pytest.fixture
def own_server(env: dict[str, str], tmp_path: Path) -> Iterator[NatsServer]:
    """A server for one test, so its log holds only that test's violations."""
    with conf_server(tmp_path, env) as srv:
        yield srv


async def test_pipeline_works_under_the_conf(own_server: NatsServer, env: dict[str, str], tmp_path: Path) -> None:
    server = own_server
    seen: dict[str, list[Any]] = {"durable": [], "plain": []}
    services = apps(seen)
    edge_errors, admin_errors = Recorder(), Recorder()
    edge = await client(url("edge", env, server.port), edge_errors, inbox_prefix=inbox_of("edge"))
    admin = await client(url("admin", env, server.port), admin_errors)
    try:
        js = edge.jetstream()
        await ensure_stream(js, StreamLimits(storage="memory"))  # the edge creates the stream
        async with serve(services[0], url("svc_geoip", env, server.port)), \
                serve(services[1], url("svc_calltracking", env, server.port)), \
                serve(services[2], url("svc_crm", env, server.port)), \
                serve(services[3], url("svc_eventwriter", env, server.port)):
            # discovery as the edge does it: $SRV.INFO, answers to its inbox
            inbox = edge.new_inbox()
            infos: list[dict[str, Any]] = []

            async def collect(msg: Any) -> None:
                infos.append(json.loads(msg.data))

            sub = await edge.subscribe(inbox, cb=collect)
            await edge.publish(f"{wire.SRV_PREFIX}.INFO", b"", reply=inbox)
            await eventually(lambda: len({i["name"] for i in infos}) == 4, what="four services discovered")
            await sub.unsubscribe()

            key = "in.gen.calltracking.call"
            msg = message("calltracking", "call", "6462464730849083401", phone="+79990001122")
            # ① enrich
            enriched = await edge.request(wire.enrich_subject(key), wire.encode(msg), timeout=2)
            assert enriched.headers and enriched.headers[wire.SERVICE_HEADER] == "geoip"
            msg["data"]["geoip"] = json.loads(enriched.data)
            assert msg["data"]["geoip"] == {"country": "RU", "ip": "109.252.93.158"}
            # ② handle (the handler calls crm over RPC with its own credential)
            answer = await edge.request(wire.handle_subject(key), wire.encode(msg), timeout=2)
            assert wire.error_from_headers(answer.headers) is None, answer.headers
            body = json.loads(answer.data)
            assert body["data"]["user"] == {"name": "Ann", "phone": "+79990001122"}
            assert body["data"]["geo"]["country"] == "RU"
            # ③ publish into JetStream, acked
            ack = await js.publish(key, wire.encode(msg), headers={wire.MSG_ID_HEADER: msg["id"]}, timeout=2)
            assert ack.stream == wire.STREAM and not ack.duplicate
            await eventually(lambda: seen["durable"] == [msg["id"]], what="durable listener got the event")
            await eventually(lambda: seen["plain"] == [msg["id"]], what="plain listener got the event")
            # the edge may answer /health (JetStream account info)
            await js.account_info()
            if (REPO / "broker" / "__main__.py").exists():
                await real_edge_hit(server, env, tmp_path, seen)
        assert not edge_errors.errors, edge_errors.errors
        # nobody (services, edge) was refused anything while the pipeline ran
        log = (tmp_path / "nats-server.log").read_text()
        assert "Violation" not in log, [line for line in log.splitlines() if "Violation" in line]
    finally:
        await edge.close()
        await admin.close()


async def test_service_cannot_publish_events_or_edge_subjects(server: NatsServer, env: dict[str, str]) -> None:
    errors = Recorder()
    svc = await client(url("svc_geoip", env, server.port), errors, inbox_prefix=inbox_of("svc_geoip"))
    admin = await client(url("admin", env, server.port))
    try:
        ajs = admin.jetstream()
        await ensure_stream(ajs, StreamLimits(storage="memory"))
        before = (await ajs.stream_info(wire.STREAM)).state.messages
        forbidden = ["in.gen.track.page", "band.handle.in.gen.track.page", "band.enrich.in.gen.track.page",
                     "band.dlq.crm", "$JS.API.STREAM.PURGE.BAND_EVENTS", "$JS.API.STREAM.DELETE.BAND_EVENTS"]
        for subject in forbidden:
            await svc.publish(subject, b'{"key":"in.gen.track.page"}')
        for subject in forbidden:
            await eventually(lambda s=subject: errors.saw("Permissions Violation", f'Publish to "{s}"'),
                             what=f"publish violation for {subject}: {errors.errors}")
        # a JetStream publish is refused as well: no ack, nothing stored
        with pytest.raises(Exception):
            await svc.jetstream().publish("in.gen.track.page", b"{}", timeout=0.5)
        assert (await ajs.stream_info(wire.STREAM)).state.messages == before
        # another service's RPC subjects cannot be taken over
        await svc.subscribe("band.rpc.crm.>")
        await svc.subscribe("band.handle.in.gen.crm.>")
        await eventually(lambda: errors.saw("Permissions Violation", 'Subscription to "band.rpc.crm.>"'), what="rpc sub refused")
        await eventually(lambda: errors.saw("Permissions Violation", 'Subscription to "band.handle.in.gen.crm.>"'),
                         what="handle sub refused")
        # what it is granted still works: calling another service, its own dead letters
        n = len(errors.errors)
        await svc.publish("band.rpc.crm.by_phone", b"{}")
        await svc.publish("band.dlq.geoip", b"{}")
        await svc.flush()
        assert len(errors.errors) == n, errors.errors[n:]
    finally:
        await svc.close()
        await admin.close()


async def test_edge_cannot_subscribe_rpc_or_call_it(server: NatsServer, env: dict[str, str]) -> None:
    errors = Recorder()
    edge = await client(url("edge", env, server.port), errors, inbox_prefix=inbox_of("edge"))
    try:
        await edge.subscribe("band.rpc.>")
        await edge.subscribe("band.rpc.crm.by_phone")
        await edge.subscribe("in.>")
        for subject in ("band.rpc.>", "band.rpc.crm.by_phone", "in.>"):
            await eventually(lambda s=subject: errors.saw("Permissions Violation", f'Subscription to "{s}"'),
                             what=f"edge subscription to {subject} refused")
        await edge.publish("band.rpc.crm.by_phone", b"{}")
        await edge.publish("$JS.API.STREAM.DELETE.BAND_EVENTS", b"")
        await eventually(lambda: errors.saw("Permissions Violation", 'Publish to "band.rpc.crm.by_phone"'),
                         what="edge rpc publish refused")
        await eventually(lambda: errors.saw("Permissions Violation", 'Publish to "$JS.API.STREAM.DELETE.BAND_EVENTS"'),
                         what="edge stream delete refused")
    finally:
        await edge.close()


async def test_nobody_reads_another_clients_replies(server: NatsServer, env: dict[str, str]) -> None:
    """Each user may subscribe only its own inbox prefix (band connects with
    ``_INBOX_<name>``): a service cannot read the edge's or another service's replies."""
    crm = App("crm")

    @crm.expose()
    async def by_phone(phone: str) -> Any:
        return {"name": "Ann", "phone": phone}

    spy_errors, edge_errors = Recorder(), Recorder()
    spy = await client(url("svc_geoip", env, server.port), spy_errors, inbox_prefix=inbox_of("svc_geoip"))
    edge = await client(url("edge", env, server.port), edge_errors, inbox_prefix=inbox_of("edge"))
    caller = await connect(url("svc_calltracking", env, server.port), name="calltracking", max_reconnect_attempts=0)
    stolen: list[str] = []

    async def steal(msg: Any) -> None:
        stolen.append(msg.subject)

    try:
        await ensure_stream(edge.jetstream(), StreamLimits(storage="memory"))
        assert caller.new_inbox().startswith("_INBOX_calltracking.")
        others = ["_INBOX.>", "_INBOX_band-edge.>", "_INBOX_calltracking.>", "*.>", ">"]
        for subject in others:
            await spy.subscribe(subject, cb=steal)
        for subject in others:
            await eventually(lambda s=subject: spy_errors.saw("Permissions Violation", f'Subscription to "{s}"'),
                             what=f"service subscription to {subject} refused: {spy_errors.errors}")
        await edge.subscribe("_INBOX_crm.>", cb=steal)
        await edge.subscribe("_INBOX.>", cb=steal)
        for subject in ("_INBOX_crm.>", "_INBOX.>"):
            await eventually(lambda s=subject: edge_errors.saw("Permissions Violation", f'Subscription to "{s}"'),
                             what=f"edge subscription to {subject} refused: {edge_errors.errors}")
        async with serve(crm, url("svc_crm", env, server.port)):
            # replies still reach their own client: an RPC answer, a JetStream ack, the spy's own request
            assert await RPC(lambda: caller).request("crm", "by_phone", phone="1") == {"name": "Ann", "phone": "1"}
            ack = await edge.jetstream().publish("in.gen.track.page", b"{}", timeout=2)
            assert ack.stream == wire.STREAM
            own = await spy.request(wire.rpc_subject("crm", "by_phone"), wire.encode({"phone": "2"}), timeout=2)
            assert wire.error_from_headers(own.headers) is None, own.headers
            await spy.flush()
        assert stolen == []
    finally:
        await caller.close()
        await spy.close()
        await edge.close()


async def real_edge_hit(server: NatsServer, env: dict[str, str], tmp_path: Path, seen: dict[str, list[Any]]) -> None:
    """``python -m broker`` logged in as ``edge``: one HTTP hit through the whole pipeline."""
    port = free_port()
    log = open(tmp_path / "edge.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "NATS_URL": url("edge", env, server.port)},
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as http:
            async def healthy() -> bool:
                assert proc.poll() is None, (tmp_path / "edge.log").read_text()
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(healthy, timeout=20, what="edge /health 200", step=0.1)

            async def answered() -> Any:
                async with http.get(f"http://127.0.0.1:{port}/calltracking/call?phone=%2B79990003344") as resp:
                    return (resp.status, await resp.text()) if resp.status == 200 else None

            before = len(seen["durable"])
            await eventually(answered, timeout=20, what="edge routes /calltracking/call", step=0.2)
            async with http.get(f"http://127.0.0.1:{port}/calltracking/call?phone=%2B79990003344") as resp:
                assert resp.status == 200
                body = await resp.text()
            assert "Ann" in body and "+79990003344" in body, body
            await eventually(lambda: len(seen["durable"]) >= before + 2, what="edge hits stored and listened")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def example_names() -> dict[str, Path]:
    """``service name -> examples/<dir>`` from each example's config.yml."""
    out = {}
    for config in sorted((REPO / "examples").glob("*/config.yml")):
        name = yaml.safe_load(config.read_text().replace("{{", "#").replace("}}", "#")).get("name") or config.parent.name
        out[str(name)] = config.parent
    return out


async def test_every_example_runs_under_its_own_credential(own_server: NatsServer, env: dict[str, str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Each examples/* service logs in as svc_<name> and does its job; nothing is refused."""
    server = own_server
    examples = example_names()
    users = conf_users()
    assert examples, "no examples/*/config.yml"
    assert not [n for n in examples if f"svc_{n}" not in users], "an example has no user in nats.conf"
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "events.sqlite"))
    edge = await client(url("edge", env, server.port), inbox_prefix=inbox_of("edge"))
    admin = await client(url("admin", env, server.port))
    try:
        js = edge.jetstream()
        await ensure_stream(js, StreamLimits(storage="memory"))
        async with contextlib.AsyncExitStack() as stack:
            for name, folder in examples.items():
                await stack.enter_async_context(serve(folder, url(f"svc_{name}", env, server.port)))
            # the edge sees them all
            inbox, infos = edge.new_inbox(), set()

            async def collect(msg: Any) -> None:
                infos.add(json.loads(msg.data)["name"])

            sub = await edge.subscribe(inbox, cb=collect)
            await edge.publish(f"{wire.SRV_PREFIX}.INFO", b"", reply=inbox)
            await eventually(lambda: infos == set(examples), what=f"all examples discovered, saw {infos}")
            await sub.unsubscribe()
            if "redirects" in examples:  # a handler answering by alias
                reply = await edge.request(wire.handle_subject("in.gen.go.nats"),
                                           wire.encode(message("go", "nats", "6462464730849083500")), timeout=2)
                assert json.loads(reply.data).get("location") == "https://nats.io", reply.data
            if "shortlink" in examples:  # JetStream KV under the service's grant
                made = await admin.request(wire.rpc_subject("shortlink", "create"),
                                           wire.encode({"link": "promo", "url": "https://example.com/p"}), timeout=5)
                assert wire.error_from_headers(made.headers) is None, made.headers
                reply = await edge.request(wire.handle_subject("in.gen.s.promo"),
                                           wire.encode(message("s", "promo", "6462464730849083501")), timeout=5)
                assert json.loads(reply.data).get("location") == "https://example.com/p", reply.data
            if "crm" in examples:
                found = await admin.request(wire.rpc_subject("crm", "by_phone"), wire.encode({"phone": "79161234567"}), timeout=2)
                assert wire.error_from_headers(found.headers) is None, found.headers
            # an event: enrichers answer the edge, the durable writer stores it
            msg = message("track", "page", "6462464730849083502")
            answers: list[str] = []

            async def enriched(reply_msg: Any) -> None:
                answers.append((reply_msg.headers or {}).get(wire.SERVICE_HEADER, ""))

            enrich_inbox = edge.new_inbox()
            esub = await edge.subscribe(enrich_inbox, cb=enriched)
            await edge.publish(wire.enrich_subject(msg["key"]), wire.encode(msg), reply=enrich_inbox)
            expected = {n for n in ("geoip", "uaparser", "docs") if n in examples}
            await eventually(lambda: expected <= set(answers), what=f"enrichers {expected} answered, got {answers}")
            await esub.unsubscribe()
            await js.publish(msg["key"], wire.encode(msg), headers={wire.MSG_ID_HEADER: msg["id"]}, timeout=2)
            if "eventwriter" in examples:
                async def stored() -> bool:
                    reply = await admin.request(wire.rpc_subject("eventwriter", "count"), b"{}", timeout=2)
                    assert wire.error_from_headers(reply.headers) is None, reply.headers
                    return from_wire(json.loads(reply.data)).data == 1  # type: ignore[attr-defined, no-any-return]

                await eventually(stored, what="eventwriter stored the event", step=0.1)
        log = (tmp_path / "nats-server.log").read_text()
        assert "Violation" not in log, [line for line in log.splitlines() if "Violation" in line]
    finally:
        await edge.close()
        await admin.close()
