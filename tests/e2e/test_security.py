"""Nobody let in: from HTTP only handlers are reachable; errors do not leak; redirects and
uid cookies cannot be steered by the client; ``redir`` honours its allow-list.

Requests go as raw bytes over real sockets (no client-side normalisation); services are
``band run`` processes where their log is part of the check.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from nats.aio.msg import Msg
from support.fakes import routed, running_edge, unique
from support.poll import pinged, wait_for
from support.processes import raw_http, start_service, write_service

from band import App, wire
from band._runtime.connect import flush
from band.errors import RemoteError
from band.testing import serve

SERVICE = """
import os
from band import expose, response

RECORD = os.environ["FK_RECORD"]

def record(what, params):
    with open(RECORD, "a") as out:
        out.write(what + " " + repr(sorted(params)) + "\\n")

@expose()
async def secret(**params):
    record("secret", params)
    return {{"leak": "internal"}}

@expose()
async def INFO(**params):
    record("INFO", params)
    return {{"leak": "internal"}}

@expose.handler()
async def page(**message):
    return response.data({{"handler": "page"}})

@expose.handler(path="/{svc}-item/:item")
async def item(item, **message):
    return response.data({{"handler": "item"}})

@expose.handler(timeout=2000)
async def crash(**message):
    raise ValueError("card 4111-1111-1111-1111 declined by db-01.internal:5432")

@expose.handler()
async def go(data, **message):
    return response.redirect(data.get("to", "https://ok.example/"))
"""


@pytest.fixture
async def sec_service(nc: Any, nats_url: str, tmp_path: Path) -> Any:
    svc = unique("fksec")
    record = tmp_path / "calls.txt"
    proc = start_service(write_service(tmp_path, svc, SERVICE.format(svc=svc)), nats_url, FK_RECORD=str(record))
    try:
        await wait_for(lambda: pinged(nc, svc), 30, "service up", procs=[proc])
        yield svc, proc, record
    finally:
        proc.stop()


def attacks(svc: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(method, target, body, headers): every way to name an RPC method or $SRV from HTTP."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    as_json = {"Content-Type": "application/json"}
    rpc = f"band.rpc.{svc}.secret"
    out: list[tuple[str, str, bytes, dict[str, str]]] = []
    for target in [
        f"/{svc}/secret", f"/{svc}/secret.json", f"/band/{svc}/secret", f"/{svc}/secret/1", f"/{svc}/secret.gif",
        f"/{svc}/INFO", f"/{svc}/secret?name=secret", f"/x/secret?service={svc}", f"/x/y?service={svc}&name=secret",
        f"/t4k/secret?service={svc}", f"/{rpc}", f"/{rpc}/x", f"/band.rpc.{svc}/secret", f"/band/rpc/{svc}/secret",
        f"/band%2Erpc%2E{svc}/secret", f"/band%2erpc/{svc}%2Esecret", f"/{quote(rpc, safe='')}/x", f"/rpc/{svc}/secret",
        "/$SRV/INFO", "/%24SRV/INFO", f"/$SRV/PING/{svc}", f"/$SRV/INFO/{svc}", "/$SRV.INFO/x", "/x/y?service=$SRV&name=INFO",
        f"/{svc}/*", f"/{svc}/%3E", f"/{svc}/secret%00", f"/{svc}/secret%20", f"/{svc}/..%2Fsecret", f"/{svc}/./secret",
        f"/{svc}-item/..%2F..%2Fsecret", "/_INBOX/x", f"/band.handle.in.gen.{svc}/secret",
        f"/{svc}/secret?key=band.rpc.{svc}.secret", f"/{svc}/page?service={svc}&name=secret&method=secret",
    ]:
        out.append(("GET", target, b"", {}))
    bodies = [
        {"service": svc, "name": "secret"},
        {"service": svc, "name": "secret", "method": "secret", "key": rpc, "subject": rpc},
        {"service": "$SRV", "name": "INFO"},
        {"service": f"band.rpc.{svc}", "name": "secret"},
        {"service": svc, "name": "page", "key": rpc, "reply": rpc},
    ]
    for body in bodies:
        for target in ["/x/y", f"/{svc}/page", "/band/x/y.json", f"/{svc}/secret"]:
            out.append(("POST", target, json.dumps(body).encode(), as_json))
            out.append(("POST", target, "&".join(f"{k}={quote(str(v))}" for k, v in body.items()).encode(), form))
    return out


async def test_only_handlers_are_reachable_from_http(nc: Any, nats_url: str, sec_service: Any) -> None:
    svc, _proc, record = sec_service
    subjects: list[str] = []

    async def spy(msg: Msg) -> None:
        subjects.append(msg.subject)

    for subject in (f"{wire.RPC_PREFIX}.>", f"{wire.SRV_PREFIX}.>"):
        await nc.subscribe(subject, cb=spy)
    async with running_edge(nats_url) as (client, edge):
        await routed(edge, f"in.gen.{svc}.page")
        await routed(edge, f"in.gen.{svc}.item")
        port = client.port
        assert port is not None
        answers = []
        for method, target, body, headers in attacks(svc):
            answer = await asyncio.to_thread(raw_http, port, target, method, headers, body)
            answers.append((method, target, answer.status, answer.body))
            assert b"internal" not in answer.body and b"leak" not in answer.body, (method, target, answer.body)
        async with aiohttp.ClientSession() as session:  # over WebSocket too
            async with session.ws_connect(f"http://127.0.0.1:{port}/wss") as ws:
                for i, frame in enumerate(
                    [{"service": svc, "name": "secret"}, {"service": "$SRV", "name": "INFO"}, {"service": f"band.rpc.{svc}", "name": "secret"}]
                ):
                    await ws.send_str(json.dumps({**frame, "id__": i}))
                    reply = json.loads(await ws.receive_str(timeout=10))
                    assert "leak" not in json.dumps(reply), reply
        # the handler itself is reachable, so the attacks were aimed at a live service
        ok = await asyncio.to_thread(raw_http, port, f"/{svc}/page")
        assert ok.status == 200 and ok.json() == {"handler": "page"}
        await flush(nc)
    published = list(subjects)  # before our own STATS request below
    assert not record.exists(), f"an @expose() method ran from HTTP: {record.read_text()}"
    stats = wire.decode((await nc.request(f"{wire.SRV_PREFIX}.STATS.{svc}", b"", timeout=2)).data)
    rpc_calls = {e["name"]: e["num_requests"] for e in stats["endpoints"] if e["subject"].startswith(wire.RPC_PREFIX + ".")}
    assert rpc_calls and not any(rpc_calls.values()), rpc_calls
    assert not [s for s in published if s.startswith(wire.RPC_PREFIX + ".")], "the edge published on band.rpc.*"
    assert set(s for s in published if s.startswith(wire.SRV_PREFIX)) <= {f"{wire.SRV_PREFIX}.INFO"}, "HTTP reached $SRV"
    print(f"\nnobody let in: {len(answers)} HTTP attempts + 3 WebSocket frames; @expose() ran 0 times; "
          f"statuses {sorted({a[2] for a in answers})}")


async def test_handler_exception_is_a_plain_500_logged_in_full(nc: Any, nats_url: str, sec_service: Any) -> None:
    svc, proc, _record = sec_service
    secret = "4111-1111-1111-1111"
    async with running_edge(nats_url) as (client, edge):
        await routed(edge, f"in.gen.{svc}.crash")
        port = client.port
        assert port is not None
        for target in (f"/{svc}/crash", f"/{svc}/crash.json", f"/band/{svc}/crash", f"/{svc}/crash.gif"):
            answer = await asyncio.to_thread(raw_http, port, target)
            shown = answer.body + repr(answer.headers).encode()
            assert answer.status == 500, (target, answer.status, answer.body)
            assert secret.encode() not in shown and b"ValueError" not in shown and b"Traceback" not in shown and b"db-01" not in shown
            body = answer.json()
            assert body["message"] == "Internal Server Error", body
    # the text is in the service's log, with its traceback
    await wait_for(lambda: secret in proc.text(), 10, "the exception in the service log", procs=[proc])
    failed = [line for line in proc.json_lines() if line.get("event") == "request failed"]
    assert failed and any("ValueError" in json.dumps(line) for line in failed)
    # RPC callers inside get a fixed text and the reference the log line carries, never the text
    caller = App(unique("fkcaller"))
    async with serve(caller, nats_url):
        with pytest.raises(RemoteError) as info:
            await caller.rpc.request(svc, "crash", timeout__=5)
    assert secret not in info.value.message and "ValueError" not in info.value.message and info.value.code == 500
    ref = info.value.message.split("reference ", 1)[1].split(";", 1)[0]
    await wait_for(lambda: any(line.get("ref") == ref and line.get("event") == "request failed" for line in proc.json_lines()),
                   10, "the reference in the service log", procs=[proc])


NEWLINE_TOKENS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("GET", "/track/page?service=track%0A", b"", {}),
    ("GET", "/track?name=page%0A", b"", {}),
    ("GET", "/x/page?service=pixel%0A", b"", {}),
    ("POST", "/x/y", b'{"service": "track\\n"}', {"Content-Type": "application/json"}),
    ("POST", "/track", b'{"name": "page\\n"}', {"Content-Type": "application/json"}),
    ("POST", "/track", b"name=page%0A", {"Content-Type": "application/x-www-form-urlencoded"}),
]


@pytest.mark.parametrize("method,target,body,headers", NEWLINE_TOKENS, ids=[f"{i}" for i in range(len(NEWLINE_TOKENS))])
async def test_service_or_name_ending_in_a_newline_is_refused(method: str, target: str, body: bytes, headers: dict[str, str], nats_url: str) -> None:
    """``track\\n`` is not a subject token: 400, nothing published, and the edge's NATS
    connection is not broken by a half-written ``PUB`` line."""
    async with running_edge(nats_url, publish_timeout_ms=500) as (client, edge):
        port = client.port
        assert port is not None
        reconnects = edge.nc.stats["reconnects"]
        answer = await asyncio.to_thread(raw_http, port, target, method, headers, body)
        assert (answer.status, edge.nc.stats["reconnects"], edge.nc.is_connected) == (400, reconnects, True), (
            f"{method} {target} {body!r}: answered {answer.status} {answer.body[:80]!r}; NATS reconnects "
            f"{reconnects} -> {edge.nc.stats['reconnects']}: band/wire.py is_token() uses '^...$', and '$' also "
            "matches before a trailing newline"
        )


BAD_LOCATIONS = [
    "https://ok.example/\r\nX-Injected: 1",
    "https://ok.example/\nSet-Cookie: uid=1111111111",
    "https://ok.example/\rX-Injected: 1",
    "\r\nX-Injected: 1",
    "https://ok.example/\x00",
    "https://ok.example/\x7f",
    "https://ok.example/\tX-Injected: 1",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example/",
    "/\\evil.example/",
]


async def test_redirect_answers_cannot_inject_headers(nats_url: str, sec_service: Any) -> None:
    svc, _proc, _record = sec_service
    async with running_edge(nats_url) as (client, edge):
        await routed(edge, f"in.gen.{svc}.go")
        port = client.port
        assert port is not None
        for location in BAD_LOCATIONS:
            answer = await asyncio.to_thread(raw_http, port, f"/{svc}/go?to={quote(location, safe='')}")
            names = [k.lower() for k, _ in answer.headers]
            assert answer.status == 502, (location, answer.status, answer.headers)
            assert "x-injected" not in names and "location" not in names and names.count("set-cookie") == 1, answer.headers
        # still percent-encoded CR/LF is only text in a URL: redirected, nothing injected
        answer = await asyncio.to_thread(raw_http, port, f"/{svc}/go?to={quote('https://ok.example/%0D%0AX-Injected:%201', safe='')}")
        assert answer.status == 302 and answer.header("Location") == ["https://ok.example/%0D%0AX-Injected:%201"]
        assert not answer.header("X-Injected")
        # the built-in redir refuses them too
        for location in BAD_LOCATIONS:
            answer = await asyncio.to_thread(raw_http, port, f"/redir/go?to={quote(location, safe='')}")
            assert answer.status == 400 and not answer.header("Location") and not answer.header("X-Injected"), (location, answer.status)


UID_ATTEMPTS: list[tuple[str, bytes, dict[str, str]]] = [
    ("/track/u", b"", {"Cookie": "uid=abc"}),
    ("/track/u", b"", {"Cookie": "uid=1"}),
    ("/track/u", b"", {"Cookie": "uid=123456789012345678901234"}),
    ("/track/u", b"", {"Cookie": "uid=-123456789012"}),
    ("/track/u", b"", {"Cookie": 'uid="1234567890123"'}),
    ("/track/u", b"", {"Cookie": "uid=12345678901%0A"}),
    ("/track/u", b"", {"Cookie": "uid=1234567890 1"}),
    ("/track/u?uid=abc", b"", {}),
    ("/track/u?uid=12345678901%3B%20Domain%3Devil.example", b"", {}),
    ("/track/u?uid=12345678901%3Bx", b"", {}),
    ("/track/u?uid=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96%EF%BC%97%EF%BC%98%EF%BC%99%EF%BC%90", b"", {}),
    ("/track/u?uid=12345678901%0A", b"", {}),
    ("/track/u?uid=12345678901%0D%0ASet-Cookie%3A%20x%3D1", b"", {}),
    ("/track/u", b'{"uid": "12345678901\\n"}', {"Content-Type": "application/json"}),
    ("/track/u", b'{"uid": "12345678901; Domain=evil.example"}', {"Content-Type": "application/json"}),
    ("/track/u", b'{"uid": true}', {"Content-Type": "application/json"}),
    ("/track/u", b'{"uid": ["12345678901"]}', {"Content-Type": "application/json"}),
    ("/track/u", b"uid=12345678901%0A", {"Content-Type": "application/x-www-form-urlencoded"}),
]


@pytest.mark.parametrize("target,body,headers", UID_ATTEMPTS, ids=[f"{i}" for i in range(len(UID_ATTEMPTS))])
async def test_uid_cookie_cannot_be_set_by_the_client(nats_url: str, target: str, body: bytes, headers: dict[str, str]) -> None:
    """Whatever the client sends as uid, an invalid one becomes a fresh numeric id."""
    async with running_edge(nats_url) as (client, _edge):
        port = client.port
        assert port is not None
        answer = await asyncio.to_thread(raw_http, port, target, "POST" if body else "GET", headers, body)
    assert answer.status == 200, (answer.status, answer.body)
    cookies = answer.header("Set-Cookie")
    assert len(cookies) == 1, answer.headers
    first, *attributes = [p.strip() for p in cookies[0].split(";")]
    name, _, value = first.partition("=")
    assert name == "uid" and value.isascii() and value.isdigit() and 10 <= len(value) <= 22, cookies
    assert value not in (target + body.decode()), "the client's own (invalid) uid was kept"
    assert "Path=/" in attributes and "HttpOnly" in attributes and not any(a.lower().startswith("domain") for a in attributes)


async def test_valid_client_uid_is_kept(nats_url: str) -> None:
    async with running_edge(nats_url) as (client, _edge):
        port = client.port
        assert port is not None
        answer = await asyncio.to_thread(raw_http, port, "/track/u", "GET", {"Cookie": "uid=6462464730849083392"})
    assert answer.header("Set-Cookie")[0].startswith("uid=6462464730849083392;")


@pytest.mark.parametrize(
    "to,allowed",
    [
        ("https://shop.example/a?b=1", True),
        ("https://www.shop.example/", True),
        ("http://SHOP.EXAMPLE/x", True),
        ("https://evil.example/", False),
        ("https://shop.example.evil.example/", False),
        ("https://evilshop.example/", False),
        ("https://shop.example@evil.example/", False),
        ("https://evil.example\\@shop.example/", False),  # browsers read "\" as "/": host evil.example
        ("https://evil.example%2F@shop.example/", True),  # userinfo "evil.example%2F", host shop.example
        ("https://evil.example#@shop.example/", False),
        ("https://evil.example?@shop.example/", False),
        ("//evil.example/", False),
        ("/local/path", False),
        ("ftp://shop.example/", False),
        ("javascript://shop.example/%0Aalert(1)", False),
    ],
)
async def test_redir_is_limited_to_the_allow_list(nats_url: str, to: str, allowed: bool) -> None:
    """``EDGE_REDIRECT_HOSTS`` (``redirect_hosts``): the built-in ``redir`` goes only there."""
    async with running_edge(nats_url, redirect_hosts=("shop.example",)) as (client, _edge):
        port = client.port
        assert port is not None
        answer = await asyncio.to_thread(raw_http, port, f"/redir/click?to={quote(to, safe='')}")
        away = await asyncio.to_thread(raw_http, port, f"/away/click?to={quote(to, safe='')}")
    for a in (answer, away):
        if allowed:
            assert a.status == 302 and a.header("Location") == [to], (to, a.status, a.headers)
        else:
            assert a.status == 400 and not a.header("Location"), (to, a.status, a.header("Location"))


@pytest.mark.parametrize("size", [1024 * 1024 - 200, 1024 * 1024 - 4000, 1024 * 1024 - 20_000])
async def test_a_body_near_the_limit_cannot_break_the_nats_link(nats_url: str, size: int) -> None:
    """A body under the edge's 1 MiB limit whose message is over NATS's max_payload: a
    clear answer (2xx when it fits, else 413), never a dropped NATS connection that would
    fail every other hit in flight."""
    body = json.dumps({"x": "a" * (size - 10)}).encode()
    assert len(body) <= 1024 * 1024
    async with running_edge(nats_url) as (client, edge):
        port = client.port
        assert port is not None
        reconnects = edge.nc.stats["reconnects"]
        answer = await asyncio.to_thread(raw_http, port, "/track/big", "POST", {"Content-Type": "application/json"}, body)
        after = await asyncio.to_thread(raw_http, port, "/track/small")
        assert answer.status in (200, 413), (answer.status, answer.body[:100])
        assert (edge.nc.stats["reconnects"], edge.nc.is_connected, after.status) == (reconnects, True, 200)
