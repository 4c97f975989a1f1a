"""The repository's nats.conf on a real nats-server: the pipeline works under it, and
each credential is held to what it needs (issue 4 "Real deployment files", issue 5
"Nobody let in")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog.testing
import yaml
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType
from nats.js.errors import NotFoundError
from support.deploy import (
    EVENTWRITER,
    NATS_CONF,
    REPO,
    Recorder,
    check_conf,
    client,
    conf_server,
    conf_users,
    eventually,
    inbox_of,
    own_consumer_create,
    password_env,
    provision_as_admin,
    publish_refused,
    request_refused,
    url,
)
from support.store import event, publish, start_store

from band import App, response, wire
from band._core.rpc import RPC
from band._runtime.connect import connect
from band._runtime.stream import StreamLimits, ensure_dlq_stream, ensure_stream
from band.cli import processes
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port
from band.errors import ConfigError
from band.response import from_wire
from band.store import reconcile
from band.store.identity_catchup import CATCH_UP
from band.store.pull import Puller
from band.testing import serve

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

    @writer.expose.listener(durable=True)
    async def broadcast(**msg: Any) -> None:  # consumer eventwriter_broadcast, as examples/eventwriter has it
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
        await provision_as_admin(env, server.port)  # eventwriter_broadcast (every event), as examples/eventwriter has it
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
        # nobody (services, edge) was refused anything while the pipeline ran: the durable
        # listener found its consumer provisioned as it wants it, and did not try to create it
        assert violations(tmp_path / "nats-server.log") == []
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
        processes.stop(proc, 15)
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
        await provision_as_admin(env, server.port, REPO / "examples")  # as docker-compose.yml does before the services
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
                async def stored() -> bool:  # SQLite fsyncs each commit: under disk load that takes seconds
                    reply = await admin.request(wire.rpc_subject("eventwriter", "count"), b"{}", timeout=30)
                    assert wire.error_from_headers(reply.headers) is None, reply.headers
                    return from_wire(json.loads(reply.data)).data == 1  # type: ignore[attr-defined, no-any-return]

                await eventually(stored, timeout=60, what="eventwriter stored the event", step=0.1)
        # nothing refused: eventwriter's listener uses its provisioned consumer without trying to create it
        assert violations(tmp_path / "nats-server.log") == []
    finally:
        await edge.close()
        await admin.close()


# --- least privilege on the events stream: each credential touches only what is its own

STORE_CONSUMERS = ("store_writer", "store_replay", "store_identity")
OWN_CONSUMER = "eventwriter_broadcast"  # examples/eventwriter's durable listener, granted to svc_eventwriter


def consumer_config(name: str, filter_subject: str = wire.EVENTS_SUBJECTS) -> bytes:
    """A JetStream consumer-create request as nats-py sends it (the filter is the attacker's choice)."""
    return json.dumps({"stream_name": wire.STREAM, "config": {
        "durable_name": name, "ack_policy": "explicit", "deliver_policy": "all", "filter_subject": filter_subject}}).encode()


def consumer_attacks(name: str) -> list[tuple[str, bytes]]:
    """Pull, re-filter (both create APIs), look at and delete consumer ``name``."""
    api = f"{wire.JS_API}.CONSUMER"
    return [
        (wire.pull_subject(name), json.dumps({"batch": 50, "expires": int(0.3e9)}).encode()),
        (f"{api}.DURABLE.CREATE.{wire.STREAM}.{name}", consumer_config(name, "in.gen.nothing.>")),
        (f"{api}.CREATE.{wire.STREAM}.{name}.in.gen.nothing.>", consumer_config(name, "in.gen.nothing.>")),
        (f"{api}.CREATE.{wire.STREAM}.{name}", consumer_config(name, "in.gen.nothing.>")),
        (f"{api}.INFO.{wire.STREAM}.{name}", b""),
        (f"{api}.DELETE.{wire.STREAM}.{name}", b""),
    ]


def ack_subject(consumer: str) -> str:
    """What an ack of ``consumer``'s first delivery looks like ($JS.ACK.<stream>.<consumer>.<n>.<sseq>.<cseq>.<ts>.<left>)."""
    return f"$JS.ACK.{wire.STREAM}.{consumer}.1.1.1.1700000000000000000.0"


async def all_refused(nc: Client, errors: Recorder, attempts: list[tuple[str, bytes]]) -> None:
    await asyncio.gather(*(request_refused(nc, errors, subject, payload) for subject, payload in attempts))


async def published_events(js: Any, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    for mid in ids:
        await js.publish("in.gen.track.page", wire.encode(message("track", "page", mid)),
                         headers={wire.MSG_ID_HEADER: mid}, timeout=2)
    return ids


async def test_services_cannot_pull_ack_or_change_the_stores_consumers(own_server: NatsServer, env: dict[str, str]) -> None:
    """svc_crm (no durable listener) and svc_eventwriter (one) against store_writer / store_replay."""
    port = own_server.port
    edge = await client(url("edge", env, port), inbox_prefix=inbox_of("edge"))
    store_errors = Recorder()
    store_nc = await client(url("store", env, port), store_errors, inbox_prefix=inbox_of("store"))
    attackers = {user: (Recorder(), user) for user in ("svc_crm", "svc_eventwriter")}
    clients = {user: await client(url(user, env, port), rec, inbox_prefix=inbox_of(user)) for user, (rec, _) in attackers.items()}
    try:
        await ensure_stream(edge.jetstream(), StreamLimits(storage="memory"))
        sjs = store_nc.jetstream()
        for name in STORE_CONSUMERS:  # as the store makes them, with its own credential
            await sjs.add_consumer(wire.STREAM, ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT,
                                                               filter_subject=wire.EVENTS_SUBJECTS))
        ids = await published_events(edge.jetstream(), "646246473084908", 50)
        for user, nc in clients.items():
            errors = attackers[user][0]
            for name in STORE_CONSUMERS:
                await all_refused(nc, errors, consumer_attacks(name))
                await publish_refused(nc, errors, ack_subject(name), b"+TERM")
        for name in STORE_CONSUMERS:  # untouched: same filter, nothing delivered, every event still waiting
            info = await sjs.consumer_info(wire.STREAM, name)
            assert info.config.filter_subject == wire.EVENTS_SUBJECTS
            assert (info.num_pending, info.num_ack_pending, info.delivered.consumer_seq) == (50, 0, 0), info
        # the store itself pulls and acks them, as band/store/pull.py does
        puller = await Puller(store_nc, wire.STREAM, "store_writer", pending_limit=1000).start()
        got: list[Any] = []
        while len(got) < 50:
            batch = await puller.fetch(50 - len(got), timeout=1.0)
            assert batch or got, "the store's own pull brought nothing"
            got += batch
        for msg in got:
            await msg.ack()
        await puller.unsubscribe()
        assert [json.loads(m.data)["id"] for m in got] == ids
        await eventually(lambda: _acked(sjs, "store_writer"), what="the store's acks counted")
        # band store check and the panel's count read the stream with the store's credential
        window = reconcile.Window()
        await reconcile.read_window(store_nc, None, window)
        assert (len(window.seqs), await reconcile.in_stream(store_nc, None)) == (50, 50)
        assert [str(i) for i in window.ids] == ids
        for user, nc in clients.items():  # and services cannot touch those consumers
            await all_refused(nc, attackers[user][0], consumer_attacks(reconcile.CHECK))
        assert not store_errors.errors, store_errors.errors
    finally:
        for nc in (edge, store_nc, *clients.values()):
            await nc.close()


async def _acked(js: Any, name: str) -> bool:
    info = await js.consumer_info(wire.STREAM, name)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def test_services_cannot_create_change_or_remove_the_events_stream(own_server: NatsServer, env: dict[str, str]) -> None:
    port = own_server.port
    admin = await client(url("admin", env, port))
    edge = await client(url("edge", env, port), inbox_prefix=inbox_of("edge"))
    errors = {user: Recorder() for user in ("svc_eventwriter", "svc_crm")}
    svc = {user: await client(url(user, env, port), rec, inbox_prefix=inbox_of(user)) for user, rec in errors.items()}
    api = f"{wire.JS_API}.STREAM"
    mine = json.dumps({"name": wire.STREAM, "subjects": [wire.EVENTS_SUBJECTS], "storage": "memory", "max_msgs": 1,
                       "max_age": 1_000_000_000}).encode()
    try:
        # first: nobody has made it yet, and a service may not make it with its own limits
        for user, nc in svc.items():
            await request_refused(nc, errors[user], f"{api}.CREATE.{wire.STREAM}", mine)
        with pytest.raises(NotFoundError):
            await admin.jetstream().stream_info(wire.STREAM)
        await ensure_stream(edge.jetstream(), StreamLimits(storage="memory"))  # the edge may
        await published_events(edge.jetstream(), "646246473084909", 3)
        for user, nc in svc.items():
            await all_refused(nc, errors[user], [
                (f"{api}.UPDATE.{wire.STREAM}", mine),
                (f"{api}.PURGE.{wire.STREAM}", b"{}"),
                (f"{api}.MSG.DELETE.{wire.STREAM}", b'{"seq": 1}'),
                (f"{api}.DELETE.{wire.STREAM}", b""),
            ])
        # a service without durable listeners has no business with the stream at all
        await request_refused(svc["svc_crm"], errors["svc_crm"], f"{api}.INFO.{wire.STREAM}")
        info = await admin.jetstream().stream_info(wire.STREAM)
        assert info.state.messages == 3 and info.config.max_msgs == -1 and info.config.max_age == 7 * 24 * 3600.0
    finally:
        for nc in (admin, edge, *svc.values()):
            await nc.close()


async def test_only_the_store_deletes_single_events_and_dead_letters(own_server: NatsServer, env: dict[str, str]) -> None:
    """band privacy forget deletes by sequence with the store's credential; nobody else deletes
    an event, and the store still purges and removes nothing."""
    port = own_server.port
    admin = await client(url("admin", env, port))
    errors = {user: Recorder() for user in ("store", "edge", "svc_eventwriter", "svc_crm")}
    ncs = {user: await client(url(user, env, port), rec, inbox_prefix=inbox_of(user)) for user, rec in errors.items()}
    api = f"{wire.JS_API}.STREAM"
    try:
        await ensure_stream(ncs["edge"].jetstream(), StreamLimits(storage="memory"))
        await ensure_dlq_stream(admin.jetstream())
        await published_events(ncs["edge"].jetstream(), "646246473084911", 3)
        await ncs["svc_crm"].publish(wire.dlq_subject("crm"), b"{}")
        await ncs["svc_crm"].flush()
        for user in ("edge", "svc_eventwriter", "svc_crm"):
            await all_refused(ncs[user], errors[user], [(f"{api}.MSG.DELETE.{wire.STREAM}", b'{"seq": 1}'),
                                                        (f"{api}.MSG.DELETE.{wire.DLQ_STREAM}", b'{"seq": 1}')])
        store_js = ncs["store"].jetstream()
        assert json.loads((await store_js.get_msg(wire.STREAM, 2)).data)["id"] == "6462464730849110001"
        assert await store_js.delete_msg(wire.STREAM, 2)
        assert (await store_js.get_msg(wire.DLQ_STREAM, 1)).data == b"{}"
        assert await store_js.delete_msg(wire.DLQ_STREAM, 1)
        await all_refused(ncs["store"], errors["store"], [(f"{api}.PURGE.{wire.STREAM}", b"{}"),
                                                          (f"{api}.DELETE.{wire.STREAM}", b""),
                                                          (f"{api}.PURGE.{wire.DLQ_STREAM}", b"{}"),
                                                          (f"{api}.MSG.DELETE.OBJ_band_uploads", b'{"seq": 1}')])
        assert (await admin.jetstream().stream_info(wire.STREAM)).state.messages == 2
        assert (await admin.jetstream().stream_info(wire.DLQ_STREAM)).state.messages == 0
    finally:
        for nc in (admin, *ncs.values()):
            await nc.close()


async def test_a_service_gets_only_its_own_consumers(own_server: NatsServer, env: dict[str, str]) -> None:
    port = own_server.port
    edge = await client(url("edge", env, port), inbox_prefix=inbox_of("edge"))
    owner_errors, crm_errors = Recorder(), Recorder()
    owner = await client(url("svc_eventwriter", env, port), owner_errors, inbox_prefix=inbox_of("svc_eventwriter"))
    crm = await client(url("svc_crm", env, port), crm_errors, inbox_prefix=inbox_of("svc_crm"))
    try:
        await ensure_stream(edge.jetstream(), StreamLimits(storage="memory"))
        await provision_as_admin(env, port)  # the operator makes the owner's consumer
        ojs = owner.jetstream()
        await published_events(edge.jetstream(), "646246473084910", 5)
        # another service: not its consumer by any API, nor a consumer of its own making
        await all_refused(crm, crm_errors, consumer_attacks(OWN_CONSUMER) + consumer_attacks("crm_mine")[1:2])
        await publish_refused(crm, crm_errors, ack_subject(OWN_CONSUMER))
        # the owner: no consumer of its own making, nor another's, and not even its own
        # (every create API): settings it chose could push events anywhere
        await all_refused(owner, owner_errors, consumer_attacks("eventwriter_other")[1:2] + consumer_attacks("crm_by_phone")[1:2]
                          + consumer_attacks(OWN_CONSUMER)[1:4])
        # but it reads its own consumer, untouched by all that
        info = await ojs.consumer_info(wire.STREAM, OWN_CONSUMER)
        assert info.num_pending == 5 and info.delivered.consumer_seq == 0 and info.config.filter_subject == wire.EVENTS_SUBJECTS
        assert info.config.deliver_subject is None
        assert not [e for e in owner_errors.errors if f"CONSUMER.INFO.{wire.STREAM}.{OWN_CONSUMER}" in e], owner_errors.errors
    finally:
        for nc in (edge, owner, crm):
            await nc.close()


async def test_services_may_read_the_store_but_only_admin_replays(server: NatsServer, env: dict[str, str]) -> None:
    """The store's methods served with the ``store`` credential; a service calls them as nats.conf decides."""
    store_app = App("store")
    replays: list[Any] = []

    @store_app.expose()
    async def query(sql: str, params: dict[str, Any] | None = None) -> Any:
        return {"columns": [], "rows": [{"sql": sql}]}

    @store_app.expose()
    async def status() -> Any:
        return {"state": "writing"}

    @store_app.expose()
    async def insert(table: str, rows: list[dict[str, Any]]) -> Any:
        return {"inserted": len(rows)}

    @store_app.expose()
    async def replay(since: str | None = None) -> Any:
        replays.append(since)
        return {"running": True}

    @store_app.expose()
    async def identify(uid: str, user_id: str, traits: Any = None) -> Any:
        return {"person_id": int(uid)}

    @store_app.expose()
    async def identity(identifier: str) -> Any:
        return {"person_id": 1}

    @store_app.expose()
    async def merge(a: str, b: str, by: str = "rpc") -> Any:
        replays.append(f"merge {a} {b}")
        return {"person_id": 1}

    @store_app.expose()
    async def split(identifier: str, by: str = "rpc") -> Any:
        replays.append(f"split {identifier}")
        return {"person_id": 1}

    @store_app.expose()
    async def forget(uid: str | None = None, by: str = "") -> Any:
        replays.append(f"forget {uid}")
        return {"rows_total": 0}

    errors = Recorder()
    reports = await client(url("svc_reports", env, server.port), errors, inbox_prefix=inbox_of("svc_reports"))
    admin = await client(url("admin", env, server.port))
    try:
        async with serve(store_app, url("store", env, server.port)):
            for method, body in (("query", {"sql": "SELECT 1"}), ("status", {}), ("insert", {"table": "t", "rows": [{}]}),
                                 ("identify", {"uid": "6462464730849083392", "user_id": "42"}),
                                 ("identity", {"identifier": "user:42"})):
                answer = await reports.request(wire.rpc_subject("store", method), wire.encode(body), timeout=2)
                assert wire.error_from_headers(answer.headers) is None, (method, answer.headers)
            await request_refused(reports, errors, wire.rpc_subject("store", "replay"), b'{"since": "2024-05-01"}')
            await request_refused(reports, errors, wire.rpc_subject("store", "forget"), b'{"uid": "6462464730849083392"}')
            # merging and splitting persons is the operator's, as replaying is
            await request_refused(reports, errors, wire.rpc_subject("store", "merge"), b'{"a": "user:1", "b": "user:2"}')
            await request_refused(reports, errors, wire.rpc_subject("store", "split"), b'{"identifier": "user:1"}')
            assert replays == []
            for method, body in (("merge", {"a": "user:1", "b": "user:2"}), ("split", {"identifier": "user:1"})):
                answer = await admin.request(wire.rpc_subject("store", method), wire.encode(body), timeout=2)
                assert wire.error_from_headers(answer.headers) is None, (method, answer.headers)
            assert replays == ["merge user:1 user:2", "split user:1"]
            replays.clear()
            answer = await admin.request(wire.rpc_subject("store", "replay"), b'{"since": "2024-05-01"}', timeout=2)
            assert wire.error_from_headers(answer.headers) is None and replays == ["2024-05-01"]
            answer = await admin.request(wire.rpc_subject("store", "forget"), b'{"uid": "1"}', timeout=2)
            assert wire.error_from_headers(answer.headers) is None and replays == ["2024-05-01", "forget 1"]
    finally:
        await reports.close()
        await admin.close()


async def test_the_store_publishes_identity_events_and_no_other(server: NatsServer, env: dict[str, str]) -> None:
    """The store publishes what its identify/alias/merge/split calls ask into the stream
    (in.gen.identity.>), never an event of another service."""
    errors = Recorder()
    store_nc = await client(url("store", env, server.port), errors, inbox_prefix=inbox_of("store"))
    try:
        js = store_nc.jetstream()
        await ensure_stream(js, StreamLimits(storage="memory"))
        ack = await js.publish("in.gen.identity.identify", b'{"uid": "6462464730849083392", "data": {"user_id": "42"}}',
                               headers={wire.MSG_ID_HEADER: "identity-permission-test"})
        assert ack.seq >= 1
        for subject in ("in.gen.track.page", "in.gen.identityx.identify", "band.handle.in.gen.track.page"):
            await publish_refused(store_nc, errors, subject, b"{}")
        # at start it reads unacked events again on store_identity (band/store/identity_catchup.py)
        await js.add_consumer(wire.STREAM, ConsumerConfig(
            durable_name=CATCH_UP, ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=ack.seq, filter_subject=wire.EVENTS_SUBJECTS))
        psub = await js.pull_subscribe_bind(CATCH_UP, stream=wire.STREAM)
        assert [m.subject for m in await psub.fetch(1, timeout=2)] == ["in.gen.identity.identify"]
        await psub.unsubscribe()
        await js.delete_consumer(wire.STREAM, CATCH_UP)
        assert not errors.saw("store_identity"), errors.errors[-3:]
    finally:
        await store_nc.close()


def violations(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "Violation" in line]


def recording_writer(seen: list[str]) -> App:
    """``eventwriter`` with one durable listener (consumer ``eventwriter_broadcast``) that notes each id in ``seen``."""
    writer = App("eventwriter")

    @writer.expose.listener(durable=True)
    async def broadcast(**msg: Any) -> None:
        seen.append(msg["id"])

    return writer


@pytest.mark.slow
async def test_store_and_durable_listener_work_under_their_own_credentials(own_server: NatsServer, env: dict[str, str],
                                                                           tmp_path: Path) -> None:
    """A real ``band store`` (chDB) as ``store`` and a durable listener as ``svc_eventwriter``
    get every event, while svc_crm pulls from and re-filters the store's consumer. The store
    makes the stream (the service may not); the operator provisions the listener's consumer
    once the stream is there (the service may not create it either)."""
    port, log = own_server.port, tmp_path / "nats-server.log"
    seen: list[str] = []
    writer = recording_writer(seen)

    crm_errors = Recorder()
    crm = await client(url("svc_crm", env, port), crm_errors, inbox_prefix=inbox_of("svc_crm"))
    edge = await client(url("edge", env, port), inbox_prefix=inbox_of("edge"))
    reports = await connect(url("svc_reports", env, port), name="reports", max_reconnect_attempts=0)
    store_proc = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            # the listener starts first; it may not make the stream, so it waits for the store to
            listening = asyncio.ensure_future(stack.enter_async_context(serve(writer, url("svc_eventwriter", env, port))))
            await eventually(lambda: any("$JS.API.STREAM.CREATE.BAND_EVENTS" in v for v in violations(log)), timeout=20,
                             what="the listener's stream create refused")
            with pytest.raises(NotFoundError):
                await edge.jetstream().stream_info(wire.STREAM)
            store_proc = start_store(tmp_path, url("store", env, port))
            js = edge.jetstream()

            async def stream_made() -> bool:
                try:
                    return (await js.stream_info(wire.STREAM)).config.storage == StorageType.FILE  # the store's StreamLimits
                except NotFoundError:
                    return False

            await eventually(stream_made, timeout=60, what="the store made the stream", step=0.1, procs=[store_proc])
            # the listener finds no consumer yet, tries to create it, is refused, and looks for it
            # again after its JetStream timeout (5 s): the operator makes it meanwhile
            await provision_as_admin(env, port)
            await asyncio.wait_for(listening, 60)  # the listener is up on the provisioned consumer
            ids = [e["id"] for e in [event(n) for n in range(40)]]
            await publish(edge, [event(n) for n in range(20)])
            # meanwhile another service goes for the store's consumer
            attacks = consumer_attacks("store_writer")
            await all_refused(crm, crm_errors, [attacks[0], attacks[1], attacks[2]])
            await publish_refused(crm, crm_errors, ack_subject("store_writer"))
            await publish(edge, [event(n) for n in range(20, 40)])

            async def stored() -> bool:
                try:
                    rows = await RPC(lambda: reports).request("store", "query", sql="SELECT count() AS n FROM stats.events",
                                                              timeout__=5)
                except Exception:
                    return False
                return int(rows["rows"][0]["n"]) == 40

            await eventually(stored, timeout=120, what="the store wrote all 40 events", step=0.2, procs=[store_proc])
            await eventually(lambda: sorted(seen) == sorted(ids), timeout=30, what=f"the listener got all 40, got {len(seen)}")
            info = await js.stream_info(wire.STREAM)
            assert info.config.storage == StorageType.FILE and info.state.messages == 40  # the store's StreamLimits
        assert store_proc.stop() == 0, store_proc.text()[-3000:]
        # the only refusals: crm's attacks and the listener's one try at making the stream, and at its consumer
        others = [v for v in violations(log) if "user:svc_crm" not in v and not own_consumer_create(v)
                  and not ("user:svc_eventwriter" in v and '"$JS.API.STREAM.CREATE.BAND_EVENTS"' in v)]
        assert others == [], others
    finally:
        if store_proc is not None and store_proc.alive():
            store_proc.stop()
        for nc in (crm, edge, reports):
            await nc.close()


async def test_a_durable_listener_without_its_grant_says_what_to_grant(own_server: NatsServer, env: dict[str, str]) -> None:
    """nats-server drops what a user may not send, so the listener gets no answer: the
    service stops starting with what to do (band provision, or the line to add to
    nats.conf), not a bare timeout. Even the consumer nats.conf grants svc_eventwriter
    (eventwriter_broadcast) must be provisioned first."""
    server = own_server
    edge = await client(url("edge", env, server.port), inbox_prefix=inbox_of("edge"))
    try:
        await ensure_stream(edge.jetstream(), StreamLimits(storage="memory"))
    finally:
        await edge.close()
    crm, writer = App("crm"), App("eventwriter")

    @crm.expose.listener(durable=True)
    async def keep(**_: Any) -> None: ...

    @writer.expose.listener(durable=True)
    async def other(**_: Any) -> None: ...

    unprovisioned = App("eventwriter")

    @unprovisioned.expose.listener(durable=True)
    async def broadcast(**_: Any) -> None: ...

    provision_it = "band provision SERVICE_DIR"
    for app, user, says in ((crm, "svc_crm", ["$JS.API.STREAM.INFO.BAND_EVENTS"]),
                            (writer, "svc_eventwriter", [provision_it, "$JS.API.CONSUMER.DURABLE.CREATE.BAND_EVENTS.eventwriter_other"]),
                            (unprovisioned, "svc_eventwriter", [provision_it, "'eventwriter_broadcast', and none provisioned"])):
        with pytest.raises(ConfigError) as raised:
            async with serve(app, url(user, env, server.port)):
                pass
        assert all(s in str(raised.value) for s in says), (user, str(raised.value))


async def test_provisioned_consumers_leave_a_service_nothing_to_redirect(own_server: NatsServer, env: dict[str, str]) -> None:
    """The operator makes the stream and the consumers with ``band provision``; a service, whose user
    cannot create consumers under the shipped nats.conf, runs its durable listener on the provisioned
    one, and cannot turn that consumer into a push consumer delivering events to another service's subject."""
    port = own_server.port
    await provision_as_admin(env, port, EVENTWRITER)
    seen: list[str] = []
    writer = recording_writer(seen)

    owner_errors = Recorder()
    owner = await client(url("svc_eventwriter", env, port), owner_errors, inbox_prefix=inbox_of("svc_eventwriter"))
    edge = await client(url("edge", env, port), inbox_prefix=inbox_of("edge"))
    try:
        # its own consumer, re-pointed at the store's replay subject: refused by every create API
        push = json.dumps({"stream_name": wire.STREAM, "config": {
            "durable_name": OWN_CONSUMER, "deliver_subject": "band.rpc.store.replay", "ack_policy": "explicit"}}).encode()
        api = f"{wire.JS_API}.CONSUMER"
        await all_refused(owner, owner_errors, [(f"{api}.DURABLE.CREATE.{wire.STREAM}.{OWN_CONSUMER}", push),
                                                (f"{api}.CREATE.{wire.STREAM}.{OWN_CONSUMER}", push)])
        async with serve(writer, url("svc_eventwriter", env, port)):
            ids = await published_events(edge.jetstream(), "646246473084920", 5)
            await eventually(lambda: sorted(seen) == sorted(ids), timeout=30, what=f"the listener got all 5, got {seen}")
        admin = await client(url("admin", env, port))
        try:
            info = await admin.jetstream().consumer_info(wire.STREAM, OWN_CONSUMER)
        finally:
            await admin.close()
        assert info.config.deliver_subject is None, "the consumer still pulls, as provisioned"
    finally:
        for nc in (owner, edge):
            await nc.close()


async def test_a_listener_changed_since_provisioning_runs_and_says_to_provision_again(own_server: NatsServer,
                                                                                      env: dict[str, str]) -> None:
    """The code changed (keys) but the operator did not run ``band provision`` again: the service,
    which may not update its consumer, starts on the provisioned one and warns which settings differ."""
    port = own_server.port
    edge = await client(url("edge", env, port), inbox_prefix=inbox_of("edge"))
    try:
        await ensure_stream(edge.jetstream(), StreamLimits(storage="memory"))
    finally:
        await edge.close()
    await provision_as_admin(env, port, EVENTWRITER)  # every event (in.>)
    changed = App("eventwriter")

    @changed.expose.listener(keys=["in.gen.calltracking"], durable=True)
    async def broadcast(**_: Any) -> None: ...

    with structlog.testing.capture_logs() as logs:
        async with serve(changed, url("svc_eventwriter", env, port)):
            pass
    warned = [e for e in logs if e["log_level"] == "warning" and e.get("consumer") == OWN_CONSUMER]
    assert warned and "band provision" in warned[0]["event"] and warned[0]["settings"] == ["filter_subject"], logs
