"""Fuzz the edge's HTTP parsing over a real socket (hypothesis).

Random methods, paths (percent-encoded or raw, band marks, extensions, dots and
wildcards), query strings, headers, cookies, content types and bodies go to one
running edge as raw bytes. Every answer must be well-formed HTTP (parsed by
``http.client``), never a 5xx (no service runs, so nothing but parsing can fail),
and every subject the edge publishes must be made of valid tokens.

Text that is not UTF-8 is drawn on purpose: lone surrogates (in JSON as ``"\\ud800"``,
in headers and bodies as their bytes), bytes that are no UTF-8 at all (``\\xff``),
percent-encoded ones (``%ED%A0%80``), and malformed multipart part headers, on hits
and on ``/upload/...``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections import Counter
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from support.fakes import running_edge, unique

from band import wire
from band._runtime.connect import flush

PHASES = (Phase.explicit, Phase.generate)  # no shrinking: a failure costs seconds, and the raw input is shown
MAX_EXAMPLES = 500

WORDS = ["track", "t4k", "band", "gif", "pixel", "away", "redir", "page", "wss", "health", "metrics",
         "$SRV", "INFO", "PING", "band.rpc", "band.handle", "rpc", "_INBOX", "in.gen.x.y", ">", "*", ".", "..", "",
         "1234567890123", "-1", "x" * 300]
EXTENSIONS = ["", ".json", ".gif", ".js", ".html", ".xml", ".JSON", "."]
GARBAGE = ["%", "%z", "%zz", "%ff", "%C3", "%2E", "%2F", "%00", "%0d%0a", "%20", "%E2%80%AE", "%F0%9F%92%A9", "%ED%A0%80", "%ED%B3%BF"]
HEADER_NAMES = ["Cookie", "Content-Type", "Accept", "X-Forwarded-For", "X-Real-IP", "Origin", "Referer",
                "User-Agent", "Host", "Access-Control-Request-Headers", "Accept-Encoding", "X-Band", "Sec-GPC"]
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=XyZ", "multipart/form-data", "application/ld+json",
                 "application/json; charset=latin-1", "image/gif", "", "*/*", ";;;", "text/plain; charset=\"utf-8\""]
QUERY_KEYS = ["service", "name", "uid", "projectId", "to", "band", "data", "id", "key", "td", "consent", ""]
# almost valid: one trailing control character after a valid token or uid
NEAR_MISSES = ["track\n", "page\n", "track\r\n", "pixel\n", "12345678901\n", "6462464730849083392\r\n", "page\t", "track\x00"]

# Lone surrogates stand for bytes that are not UTF-8 on the wire (see ``raw``):
# U+DC80..U+DCFF for one raw byte 0x80..0xFF, any other for its 3-byte (invalid) UTF-8 form.
surrogate = st.characters(categories=["Cs"])
# printable latin-1 without CR/LF (a header value that is still one header line), and surrogates
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f") | surrogate, max_size=60)
anything = st.text(st.characters(codec=None) | surrogate, max_size=40)


def raw(text: str) -> bytes:
    """``text`` as UTF-8, except its lone surrogates: U+DC80..U+DCFF become the raw byte they
    escape (``surrogateescape``), any other its surrogate bytes (``surrogatepass``)."""
    out = bytearray()
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(code - 0xDC00)
        else:
            out += ch.encode("utf-8", "surrogatepass")
    return bytes(out)


segment = st.one_of(
    st.sampled_from(WORDS),
    st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True),
    anything.map(lambda s: quote(raw(s), safe="")),
    anything.map(lambda s: quote(raw(s), safe="/.%*>$:@!&'()+,;=")),
    st.lists(st.sampled_from([*GARBAGE, "a", "b", ".", "_"]), min_size=1, max_size=5).map("".join),
    anything.map(lambda s: "".join(c for c in s if c not in " \r\n\t?#\x00\x0b\x0c")),  # raw UTF-8
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | st.text(surrogate, max_size=2),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.text(surrogate, max_size=1), inner, max_size=4),
    max_leaves=20,
)
# multipart part headers, well-formed or not: no colon, a name or file name that is not
# UTF-8, a folded line, an encoding the edge refuses
part_heads = st.one_of(
    st.sampled_from([
        'Content-Disposition: form-data; name="f"; filename="a.csv"',
        'Content-Disposition form-data; name="f"',
        "Content-Disposition: form-data",
        ": no name",
        'Content-Disposition: form-data; name="f"\r\n continued',
        'Content-Disposition: form-data; name="f"; filename="a"\r\nContent-Transfer-Encoding: base64',
        "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%ED%A0%80.csv",
    ]),
    st.tuples(anything, st.one_of(st.none(), anything)).map(
        lambda nf: f'Content-Disposition: form-data; name="{nf[0]}"' + (f'; filename="{nf[1]}"' if nf[1] is not None else "")
    ),
    header_text.map(lambda v: f'Content-Disposition: form-data; name="f"; filename="x"\r\nContent-Type: {v}'),
)
body = st.one_of(
    st.just(b""),
    json_values.map(lambda v: json.dumps({"a": v, "s": "\ud800"}).encode()),  # JSON spells a lone surrogate: "\ud800"
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(QUERY_KEYS) | st.text(max_size=8), json_values | st.sampled_from(NEAR_MISSES), max_size=6).map(
        lambda d: json.dumps(d).encode()
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | anything, anything), max_size=5).map(lambda kv: urlencode([(raw(k), raw(v)) for k, v in kv]).encode()),
    st.lists(st.tuples(st.sampled_from(QUERY_KEYS), anything), max_size=3).map(
        lambda kv: raw("".join(f'--XyZ\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in kv)) + b"--XyZ--\r\n"
    ),
    st.lists(st.tuples(part_heads, anything), min_size=1, max_size=3).map(
        lambda parts: raw("".join(f"--XyZ\r\n{head}\r\n\r\n{v}\r\n" for head, v in parts)) + b"--XyZ--\r\n"
    ),
)
query = st.one_of(
    st.just(""),
    st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | anything, st.sampled_from(WORDS + NEAR_MISSES) | anything), max_size=6).map(
        lambda kv: urlencode([(raw(k), raw(v)) for k, v in kv])),
    st.lists(st.sampled_from([*GARBAGE, "=", "&", "a", "service=", "name=", "uid=", "+", ";"]), max_size=10).map("".join),
)
cookie = st.one_of(
    st.none(),
    st.sampled_from(["uid=6462464730849083392", "uid=abc", "uid=", "uid=1;uid=2", "uid=\"6462464730849083392\"", "a=b; uid=123456789012345678901234"]),
    header_text.map(lambda v: f"uid={v}"),
)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES) | st.from_regex(r"[A-Za-z][A-Za-z0-9\-]{0,15}", fullmatch=True), header_text), max_size=5)
method = st.sampled_from(["GET", "GET", "GET", "GET", "POST", "POST", "POST", "POST", "OPTIONS", "HEAD", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "BREW"])


@st.composite
def requests(draw: Any) -> tuple[str, bytes]:
    verb = draw(method)
    if draw(st.booleans()):  # a plausible hit: the noise is then in the query, headers and body
        token = st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True)
        parts = [draw(st.sampled_from(["track", "t4k", "gif", "pixel", "away", "redir"]) | token), draw(token)]
        parts += draw(st.lists(st.from_regex(r"-?[0-9]{1,25}", fullmatch=True) | segment, max_size=1))
        if draw(st.integers(0, 5)) == 0:  # an upload: the same noise, streamed into the object store
            parts = [wire.UPLOAD_PATH, *parts[:2]]
        path = "/" + "/".join(parts)
    else:
        path = "/" + "/".join(draw(st.lists(segment, max_size=5)))
    if draw(st.booleans()):
        path = "/band" + path
    path += draw(st.sampled_from(EXTENSIONS))
    q = draw(query)
    if draw(st.integers(0, 9)) == 0:  # one field with a near-miss value, where it matters most
        q += ("&" if q else "") + urlencode([(draw(st.sampled_from(["service", "name", "uid"])), draw(st.sampled_from(NEAR_MISSES)))])
    target = path + ("?" + q if q else "")
    lines = [f"{verb} {target} HTTP/1.1", "Host: edge.test"]
    ctype = draw(st.sampled_from(CONTENT_TYPES) | header_text)
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    c = draw(cookie)
    if c is not None:
        lines.append(f"Cookie: {c}")
    lines += [f"{name}: {value}" for name, value in draw(headers) if name.lower() not in ("host", "content-length", "transfer-encoding", "connection")]
    payload = draw(body) if verb != "GET" or draw(st.booleans()) else b""
    lines += [f"Content-Length: {len(payload)}", "Connection: close"]
    head = raw("\r\n".join(lines) + "\r\n\r\n")
    return verb, head + payload


def exchange(port: int, raw: bytes, verb: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send raw bytes; parse the answer strictly (status line, headers, full body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(raw)
        resp = http.client.HTTPResponse(sock, method=verb)
        resp.begin()
        data = resp.read()
        return resp.status, resp.getheaders(), data


def bad_subject(subject: str) -> bool:
    """A subject naming a routing key whose service/name positions are not tokens."""
    for root in (f"{wire.ENRICH_PREFIX}.", f"{wire.HANDLE_PREFIX}.", ""):
        if subject.startswith(root + wire.EVENTS_ROOT + "."):
            parts = subject[len(root):].split(".")
            return not (len(parts) == 4 and f"{parts[0]}.{parts[1]}" == wire.KEY_PREFIX and wire.is_token(parts[2]) and wire.is_token(parts[3]))
    return subject.startswith(wire.RPC_PREFIX + ".")  # the edge never calls RPC


async def test_fuzz_edge_http_parsing(nc: Any, nats_url: str) -> None:
    subjects: list[str] = []

    async def spy(msg: Msg) -> None:
        subjects.append(msg.subject)

    # not band.handle.>: a spy there would be a responder that never answers (504s)
    for subject in (f"{wire.EVENTS_ROOT}.>", f"{wire.ENRICH_PREFIX}.>", f"{wire.RPC_PREFIX}.>"):
        await nc.subscribe(subject, cb=spy)
    await flush(nc)
    statuses: Counter[int] = Counter()
    async with running_edge(nats_url, max_body_bytes=64 * 1024, body_timeout_s=5.0, upload_bucket=unique("fzup")) as (client, _edge):
        port = client.port
        assert port is not None

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck), phases=PHASES, report_multiple_bugs=False)
        @given(requests())
        @example(("GET", b"GET /wss HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        @example(("POST", b"POST /wss?uid=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"))
        @example(("GET", b"GET /track/page?service=a.b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        @example(("GET", b"GET /%24SRV/INFO HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        @example(("GET", b"GET /tr\xc3\xa4ck/p\xe4ge HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        @example(
            (
                "POST",
                b'POST /track/page HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{"a":"\\ud800"}',
            )
        )
        @example(("GET", b"GET /track/page HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\r\nReferer: \xed\xa0\x80\r\nConnection: close\r\n\r\n"))
        @example(
            (
                "POST",
                b"POST /upload/x/y HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 52\r\nConnection: close\r\n\r\n"
                b"--XyZ\r\nContent-Disposition form-data\r\n\r\nv\r\n--XyZ--\r\n",
            )
        )
        @example(
            (
                "POST",
                b'POST /upload/x/y HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 77\r\nConnection: close\r\n\r\n'
                b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="\xff"\r\n\r\nv\r\n--XyZ--\r\n',
            )
        )
        @example(
            ("POST", b'POST /band/t4k.json HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"a":1e9999}'[:-3])
        )
        def check(req: tuple[str, bytes]) -> None:
            verb, raw = req
            status, hdrs, data = exchange(port, raw, verb)
            statuses[status] += 1
            assert 100 <= status < 500, f"{status} {data[:200]!r} for {raw[:300]!r}"
            names = {k.lower() for k, _ in hdrs}
            if status >= 200 and verb != "HEAD" and status != 204:
                assert "content-length" in names or "transfer-encoding" in names

        await asyncio.to_thread(check)
        await flush(nc)
    bad = sorted({s for s in subjects if bad_subject(s)})
    assert not bad, f"malformed subjects published: {bad[:10]}"
    keys = sum(1 for s in subjects if s.startswith("in.gen."))
    print(f"\nfuzz edge: {sum(statuses.values())} requests, answers {dict(sorted(statuses.items()))}, {keys} events published, 0 bad subjects")


WS_EXAMPLES = 300


def strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")

frame_values = json_values | st.sampled_from(WORDS + NEAR_MISSES)
frames = st.one_of(
    st.dictionaries(
        st.sampled_from(["service", "name", "id__", "uid", "projectId", "to", "data", "key", "td"]) | st.text(max_size=8), frame_values, max_size=6
    ).map(json.dumps),
    st.fixed_dictionaries(
        {"service": st.sampled_from(["track", "t4k", "pixel", "gif", "redir", "away"]) | frame_values, "name": frame_values, "id__": json_values}
    ).map(json.dumps),
    st.fixed_dictionaries(  # a plausible frame; the noise is in the other fields
        {
            "service": st.sampled_from(["track", "t4k", "pixel", "gif", "redir", "away"]) | st.from_regex(r"[a-z0-9_\-]{1,10}", fullmatch=True),
            "name": st.from_regex(r"[A-Za-z0-9_\-]{1,10}", fullmatch=True),
            "id__": json_values,
        },
        optional={"to": frame_values, "uid": frame_values, "projectId": frame_values, "data": frame_values, "key": frame_values},
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=100),
    st.binary(max_size=100),
)


async def test_fuzz_websocket_frames(nc: Any, nats_url: str) -> None:
    """Random frames on one ``/wss`` socket: each gets one typed answer with ``id__``
    echoed (or null), never a 5xx, and the socket stays open; subjects stay tokens."""
    subjects: list[str] = []

    async def spy(msg: Msg) -> None:
        subjects.append(msg.subject)

    for subject in (f"{wire.EVENTS_ROOT}.>", f"{wire.ENRICH_PREFIX}.>", f"{wire.RPC_PREFIX}.>"):
        await nc.subscribe(subject, cb=spy)
    kinds: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    async with running_edge(nats_url) as (client, _edge):
        async with client.ws_connect("/wss?uid=1234567890123") as ws:

            async def roundtrip(frame: str | bytes) -> Any:
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
                return json.loads(await ws.receive_str(timeout=10))

            @settings(
                max_examples=WS_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck), phases=PHASES, report_multiple_bugs=False
            )
            @given(frames)
            @example('{"service": "track\\n", "name": "page", "id__": 1}')
            @example('{"service": "$SRV", "name": "INFO", "id__": 2}')
            @example(b"\xff\xfe\x00")
            @example('{"service": "track", "name": "page", "a": "\\ud800", "id__": 3}')
            @example('{"service": "track", "name": "page", "id__": ["\\udcff"]}')
            @example(b'{"service": "track", "name": "page", "a": "\xed\xa0\x80", "id__": 4}')
            def check(frame: str | bytes) -> None:
                answer = asyncio.run_coroutine_threadsafe(roundtrip(frame), loop).result(20)
                assert isinstance(answer, dict) and answer.get("type__") in ("data", "pixel", "redirect", "error"), answer
                assert answer["statusCode"] < 500, (frame, answer)
                try:  # strict JSON, as the edge reads it: NaN and Infinity are not JSON
                    sent = json.loads(
                        frame.decode("utf-8") if isinstance(frame, bytes) else frame, parse_constant=strict_constant
                    )  # UTF-8 strictly, as the edge
                except (ValueError, RecursionError):
                    sent = None
                ident = sent.get("id__") if isinstance(sent, dict) else None
                if wire.lone_surrogate(ident) is not None:  # an id__ that is not text cannot be echoed
                    ident = None
                elif isinstance(sent, dict) and wire.lone_surrogate(sent) is not None:  # "\ud800" parses but is refused: 400, id__ echoed
                    assert answer["statusCode"] == 400 and "lone surrogate" in answer["message"], (frame, answer)
                assert answer["id__"] == ident, (frame, answer)
                kinds[f"{answer['type__']} {answer['statusCode']}"] += 1

            await asyncio.to_thread(check)
            assert not ws.closed
    await flush(nc)
    bad = sorted({s for s in subjects if bad_subject(s)})
    assert not bad, f"malformed subjects published: {bad[:10]}"
    print(f"\nfuzz ws: {sum(kinds.values())} frames on one socket, answers {dict(sorted(kinds.items()))}, 0 bad subjects")
