"""Fuzz the framework's message decoding: garbage on ``band.rpc.*``, ``band.handle.*`` and
``band.enrich.*`` of a running ``band run`` process gets a micro error reply (ADR-32
headers) or a valid answer, never silence, and the service keeps serving.

Text that is not Unicode is drawn on purpose: lone surrogates spelled in JSON
(``"\\ud800"``) or as their bytes, also beside numbers past 64 bits (which take the
standard library's parser, the one that reads them): each is a 400, not a 500 from a
reply that could not be encoded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import nats.errors
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from support.fakes import unique
from support.poll import pinged, wait_for
from support.processes import start_service, write_service

from band import wire

PHASES = (Phase.explicit, Phase.generate)  # no shrinking: a failure costs seconds, and the raw input is shown
MAX_EXAMPLES = 300

SERVICE = """
from band import expose, response

@expose()
async def echo(**params):
    return {{"keys": len(params)}}

@expose()
async def needs(x):
    return {{"x": str(x)[:10]}}

@expose.handler()
async def page(**message):
    return response.data({{"ok": True}})

@expose.enricher(props={{"ip": "td.ip", "deep": "data.a.b.c"}}, keys=["in.gen.{svc}"])
async def mark(ip=None, deep=None, **_):
    return {{"ip": str(ip)[:20]}}
"""

surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | surrogates,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
message_keys = st.sampled_from(["key", "id", "data", "td", "uid", "service", "name", "x", "attempt__", "timeout__", "type__", ""]) | st.text(max_size=10)
payloads = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"null", b"[]", b"{", b"{}", b'{"key": 1}', b'{"key": "in.gen.x.y"}', b"\xff\xfe", b'"str"', b"1e999", b"NaN", b"[" * 20]),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(message_keys, json_values, max_size=6).map(lambda d: json.dumps(d).encode()),
    # a number past 64 bits sends the body through json, which reads "\ud800" and its bytes
    st.dictionaries(message_keys, json_values, max_size=4).map(lambda d: json.dumps({**d, "x": "\ud800", "n": 2**70}).encode()),
    st.just(b'{"x": "\xed\xa0\x80", "n": 12345678901234567890123}'),
)
headers = st.none() | st.dictionaries(
    st.sampled_from([wire.ERROR_HEADER, wire.ERROR_CODE_HEADER, wire.MSG_ID_HEADER, "Status", "X-Any"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12),
    max_size=3,
)


@st.composite
def requests(draw: Any, svc: str) -> tuple[str, bytes, dict[str, str] | None]:
    subject = draw(st.sampled_from([
        wire.rpc_subject(svc, "echo"),
        wire.rpc_subject(svc, "needs"),
        wire.rpc_subject(svc, "page"),
        wire.handle_subject(f"in.gen.{svc}.page"),
        wire.enrich_subject(f"in.gen.{svc}.page"),
        wire.enrich_subject(f"in.gen.{svc}.other"),
    ]))
    return subject, draw(payloads), draw(headers)


def check_reply(msg: Any, payload: bytes) -> None:
    error = wire.error_from_headers(msg.headers)
    try:  # strict UTF-8, and no lone surrogates: JSON as the contract reads it
        decoded = json.loads(payload.decode("utf-8")) if payload.strip() else {}  # no body: no parameters
    except (ValueError, RecursionError):
        decoded = None
    if decoded is not None and wire.lone_surrogate(decoded) is not None:
        decoded = None
    if decoded is not None and not isinstance(decoded, dict):  # JSON, but not an object: refused
        assert error is not None and error[0] == 400, (payload[:80], msg.headers, msg.data[:80])
    if decoded is None and payload.strip() != b"null":  # not JSON: always refused with a 400
        assert error is not None and error[0] == 400, (payload[:80], msg.headers, msg.data[:80])
        assert msg.headers[wire.ERROR_CODE_HEADER] == "400"
    if error is not None:
        code, description = error
        assert 400 <= code <= 599 and description
        assert "\n" not in description and "Traceback" not in description
    else:
        json.loads(msg.data)  # a valid answer is JSON


async def test_fuzz_service_decoding(nc: Any, nats_url: str, tmp_path: Path) -> None:
    svc = unique("fzsvc")
    proc = start_service(write_service(tmp_path, svc, SERVICE.format(svc=svc)), nats_url)
    loop = asyncio.get_running_loop()
    replies = {"error": 0, "answer": 0, "silent": 0}
    try:
        await wait_for(lambda: pinged(nc, svc), 30, "service up", procs=[proc])

        def call(subject: str, payload: bytes, hdrs: dict[str, str] | None, reply: bool = True) -> Any:
            if not reply:
                return asyncio.run_coroutine_threadsafe(nc.publish(subject, payload, headers=hdrs), loop).result(10)
            return asyncio.run_coroutine_threadsafe(nc.request(subject, payload, timeout=3, headers=hdrs), loop).result(10)

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck), phases=PHASES, report_multiple_bugs=False)
        @given(requests(svc), st.sampled_from([True, True, True, False]))
        @example((wire.rpc_subject(svc, "echo"), b"\x00\x01garbage", None), True)
        @example((wire.handle_subject(f"in.gen.{svc}.page"), b"[1,2]", None), True)
        @example((wire.enrich_subject(f"in.gen.{svc}.page"), b'{"no_key": 1}', None), True)
        @example((wire.rpc_subject(svc, "needs"), b"{}", None), True)
        @example((wire.rpc_subject(svc, "needs"), b'{"x": "\\ud800", "n": 12345678901234567890123}', None), True)
        @example((wire.handle_subject(f"in.gen.{svc}.page"), b'{"key": "k", "data": {"a": "\\udfff"}, "n": 12345678901234567890123}', None), True)
        def check(req: tuple[str, bytes, dict[str, str] | None], with_reply: bool) -> None:
            subject, payload, hdrs = req
            if not with_reply and payload[:1] != b"{":  # fire-and-forget garbage: must not hurt
                call(subject, payload, hdrs, reply=False)
                replies["silent"] += 1
                return
            try:
                msg = call(subject, payload, hdrs)
            except nats.errors.TimeoutError:
                raise AssertionError(f"no reply from {subject} to {payload[:80]!r}") from None
            check_reply(msg, payload)
            replies["error" if wire.error_from_headers(msg.headers) else "answer"] += 1

        await asyncio.to_thread(check)

        # still serving, every role
        echo = await nc.request(wire.rpc_subject(svc, "echo"), b'{"a": 1}', timeout=5)
        assert wire.decode(echo.data) == {"type__": "data", "statusCode": 200, "data": {"keys": 1}}
        page = await nc.request(wire.handle_subject(f"in.gen.{svc}.page"), b'{"key": "in.gen.x.page"}', timeout=5)
        assert wire.decode(page.data)["data"] == {"ok": True}
        enriched = await nc.request(
            wire.enrich_subject(f"in.gen.{svc}.page"), json.dumps({"key": f"in.gen.{svc}.page", "td": {"ip": "1.2.3.4"}}).encode(), timeout=5
        )
        assert wire.decode(enriched.data) == {"ip": "1.2.3.4"}
        assert proc.alive()
    finally:
        code = proc.stop()
    assert code == 0, proc.text()[-3000:]
    crashes = [line for line in proc.json_lines() if "Task exception" in str(line.get("event", "")) or "Task exception" in str(line.get("message", ""))]
    assert not crashes, crashes[:3]
    print(f"\nfuzz decode: {sum(replies.values())} messages to rpc/handle/enrich: {replies['error']} error replies, "
          f"{replies['answer']} answers, {replies['silent']} without reply; service still serving, exit 0")


async def test_deeply_nested_json_gets_an_error_reply(nc: Any, nats_url: str, tmp_path: Path) -> None:
    """``[[[[…`` 5000 deep makes ``json.loads`` raise RecursionError, which is not a
    ValueError: each subject must still answer 400 instead of leaving the caller to time out."""
    svc = unique("fzdeep")
    proc = start_service(write_service(tmp_path, svc, SERVICE.format(svc=svc)), nats_url)
    silent = []
    try:
        await wait_for(lambda: pinged(nc, svc), 30, "service up", procs=[proc])
        for subject in (wire.rpc_subject(svc, "echo"), wire.handle_subject(f"in.gen.{svc}.page"), wire.enrich_subject(f"in.gen.{svc}.page")):
            try:
                msg = await nc.request(subject, b"[" * 5000, timeout=1.5)
            except nats.errors.TimeoutError:
                silent.append(subject)
                continue
            assert wire.error_from_headers(msg.headers) is not None and msg.headers[wire.ERROR_CODE_HEADER] == "400"
        echo = await nc.request(wire.rpc_subject(svc, "echo"), b"{}", timeout=5)
        assert wire.decode(echo.data)["data"] == {"keys": 0}
    finally:
        proc.stop()
    assert not silent, (
        f"no reply at all from {silent} to deeply nested JSON: band/wire.py decode() catches "
        "(UnicodeDecodeError, ValueError) but json.loads raises RecursionError, so Service._decode lets it "
        "escape the request task"
    )
