"""The edge's stop ends within EDGE_SHUTDOWN_TIMEOUT_S, whatever its clients do.

A real edge process (``python -m broker``), real sockets, a real nats-server.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats.js.errors
import pytest
from support.fakes import unique
from support.poll import wait_for
from support.processes import edge_healthy, start_edge

from band import wire

BOUNDARY = "stallboundary"


async def objects_in(js: Any, bucket: str) -> int:
    try:
        return int((await js.stream_info(wire.object_stream(bucket))).state.messages)
    except nats.js.errors.NotFoundError:
        return 0


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict[str, Any]] | str:
    """The status, headers and JSON body the edge sent, or what went wrong reading it."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split(" ", 2)[1]), headers, json.loads(body)
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
        return f"no answer: {exc!r}"


@pytest.mark.slow
async def test_stalled_clients_do_not_hold_the_stop(nats_url: str, nc: Any, tmp_path: Path) -> None:
    """An upload and a hit whose clients stop sending mid-body. The stop used to wait for
    them until aiohttp's timeout, then removed the upload's objects and drained NATS on
    top (11.7 s against a 10 s limit). Now their reads end at 0.4 of the limit with a 503
    (send it again), the objects are removed, and the edge exits 0 within the limit."""
    limit = 4.0
    bucket = unique("stall")
    js = nc.jetstream()
    edge, port = start_edge(nats_url, tmp_path, EDGE_SHUTDOWN_TIMEOUT_S=str(limit), EDGE_UPLOAD_BUCKET=bucket,
                            EDGE_UPLOAD_IDLE_TIMEOUT_S="60", EDGE_BODY_TIMEOUT_S="60", EDGE_STREAM_STORAGE="memory")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for(lambda: edge_healthy(session, f"http://127.0.0.1:{port}"), 30, "edge healthy", procs=[edge])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        up_writer.write(f"POST /upload/x/y HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                        f"Content-Length: 100000000\r\n\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n".encode())
        up_writer.write(b"u" * 2_000_000)  # then nothing more
        hit_reader, hit_writer = await asyncio.open_connection("127.0.0.1", port)
        hit_writer.write(b"POST /track/page HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\": 1")
        await up_writer.drain()
        await hit_writer.drain()
        await wait_for(lambda: objects_in(js, bucket), timeout=20, what="chunks of the upload stored", procs=[edge])

        started = time.monotonic()
        edge.signal(signal.SIGTERM)
        upload, hit = await asyncio.gather(answer(up_reader), answer(hit_reader))
        code = await asyncio.to_thread(edge.popen.wait, 30)
        took = time.monotonic() - started
        for writer in (up_writer, hit_writer):
            writer.transport.abort()
    finally:
        edge.kill()
    assert code == 0, edge.text()[-3000:]
    for what in (upload, hit):
        assert not isinstance(what, str), what
        status, headers, body = what
        assert status == 503 and headers.get("retry-after") == "1" and "shutting down" in body["message"], what
    assert took < limit, f"the stop took {took:.1f} s against its {limit:g} s limit"
    assert await objects_in(js, bucket) == 0
