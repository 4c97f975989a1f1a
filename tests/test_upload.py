"""POST /upload/<service>/<name>: files streamed into the object store, read back by a handler.

Real edge (in-process, or as its own process for the memory test), real sockets,
real nats-server, a real band service reading the files with ``band.files``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.js.errors
import pytest
from support.fakes import routed, running_edge, unique
from support.poll import wait_for
from support.processes import memory

from band import App, files, wire
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port
from band.files import FileRef, chunks
from band.testing import serve

BOUNDARY = "bandtestboundary7MA4YWxkTrZu0gW"
MiB = 1024 * 1024


# --- a multipart body made on the fly (the tests never hold a big file in memory) ---
def part_head(param: str, filename: str | None = None, ctype: str = "application/octet-stream") -> bytes:
    disposition = f'form-data; name="{param}"' + (f'; filename="{filename}"' if filename is not None else "")
    lines = [f"--{BOUNDARY}", f"Content-Disposition: {disposition}"]
    if filename is not None:
        lines.append(f"Content-Type: {ctype}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


TAIL = f"--{BOUNDARY}--\r\n".encode()


def random_blocks(total: int, seed: int, block: int = MiB) -> Iterator[bytes]:
    rnd = random.Random(seed)
    left = total
    while left > 0:
        n = min(block, left)
        left -= n
        yield rnd.randbytes(n)


def file_digest(total: int, seed: int) -> str:
    digest = hashlib.sha256()
    for chunk in random_blocks(total, seed):
        digest.update(chunk)
    return digest.hexdigest()


def big_file_body(total: int, seed: int, *, progress: list[int] | None = None) -> Iterator[bytes]:
    yield part_head("note") + b"nightly export" + b"\r\n"
    yield part_head("file", "big.bin")
    for chunk in random_blocks(total, seed):
        if progress is not None:
            progress[0] += len(chunk)
        yield chunk
    yield b"\r\n" + TAIL


def body_length(total: int) -> int:
    return len(part_head("note") + b"nightly export\r\n" + part_head("file", "big.bin")) + total + 2 + len(TAIL)


async def chunked(blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for block in blocks:
        yield block


async def raw_upload(host: str, port: int, path: str, blocks: Iterator[bytes], *, length: int | None = None, stall: bool = False) -> tuple[int, dict[str, Any]]:
    """POST ``blocks`` over a plain socket (chunked unless ``length``), reading the answer
    while still sending: an edge that refuses mid-body answers and closes."""
    reader, writer = await asyncio.open_connection(host, port)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n".encode())

    async def send() -> None:
        try:
            for block in blocks:
                writer.write(block if length is not None else b"%x\r\n%s\r\n" % (len(block), block))
                await writer.drain()
            if stall:  # the client goes quiet mid-body
                await asyncio.Event().wait()
            if length is None:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            pass  # refused mid-body: the answer is already on its way

    sender = asyncio.create_task(send())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        size = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        body = await reader.readexactly(size)
    finally:
        sender.cancel()
        writer.transport.abort()
    return status, json.loads(body)


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


# --- the service that receives uploads ------------------------------------------
def receiver(name: str) -> App:
    """A band service whose handler reads every file back and reports what it read."""
    app = App(name)

    @app.expose.handler(name="put", timeout=120_000)
    async def put(files: list[FileRef], data: dict[str, Any]) -> dict[str, Any]:
        read = []
        started = time.perf_counter()
        for ref in files:
            digest, size = hashlib.sha256(), 0
            async for chunk in chunks(ref):
                digest.update(chunk)
                size += len(chunk)
            read.append({"param": ref["param"], "name": ref["name"], "size": size, "sha256": digest.hexdigest(), "ref": ref})
        return {"files": read, "data": data, "read_s": time.perf_counter() - started}

    return app


async def objects_left(js: Any, bucket: str) -> int:
    """Messages in the bucket's stream (chunks and infos): 0 = nothing left behind."""
    try:
        info = await js.stream_info(wire.object_stream(bucket))
    except nats.js.errors.NotFoundError:
        return 0
    return int(info.state.messages)


@asynccontextmanager
async def receiving(nats_url: str, nc: Any) -> AsyncIterator[str]:
    service = unique("up")
    async with serve(receiver(service), nats_url):
        yield service


# --- in-process edge --------------------------------------------------------------
async def test_files_and_fields_reach_the_handler(nats_url: str, nc: Any) -> None:
    bucket = unique("up")
    async with receiving(nats_url, nc) as service, running_edge(nats_url, upload_bucket=bucket) as (client, edge):
        await routed(edge, f"in.gen.{service}.put")
        form = aiohttp.FormData()
        form.add_field("campaign", "spring sale")
        form.add_field("rows", io.BytesIO(b"id,name\n1,a\n2,b\n"), filename="people.csv", content_type="text/csv")
        blob = os.urandom(3 * MiB + 17)  # several chunks, the last one short
        form.add_field("photo", io.BytesIO(blob), filename="me.jpg", content_type="image/jpeg")
        form.add_field("empty", io.BytesIO(b""), filename="", content_type="application/octet-stream")  # no file chosen
        resp = await client.post(f"/upload/{service}/put?src=crm", data=form)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert resp.headers["Set-Cookie"].startswith("uid=")
        assert body["data"] == {"campaign": "spring sale", "src": "crm"}
        got = {f["param"]: f for f in body["files"]}
        assert set(got) == {"rows", "photo"}
        assert got["rows"]["sha256"] == hashlib.sha256(b"id,name\n1,a\n2,b\n").hexdigest() == got["rows"]["ref"]["sha256"]
        assert got["photo"]["size"] == len(blob) == got["photo"]["ref"]["size"]
        assert got["photo"]["sha256"] == hashlib.sha256(blob).hexdigest()
        ref = got["photo"]["ref"]
        assert ref["bucket"] == bucket and ref["type"] == "image/jpeg" and ref["name"] == "me.jpg"
        assert ref["object"].startswith(f"{service}/put/")

        # the objects are ordinary ADR-20 objects: nats-py's own object store reads them
        obs = await nc.jetstream().object_store(bucket)
        assert (await obs.get(ref["object"])).data == blob

        # band.files.local_copy: a real file with the upload's name, gone afterwards
        async with files.local_copy(got["rows"]["ref"], nc=nc) as path:
            assert path.name == "people.csv" and path.read_bytes() == b"id,name\n1,a\n2,b\n"
        assert not path.exists() and not path.parent.exists()
        assert await files.read(ref, nc=nc) == blob


async def test_event_in_stream_and_no_handler(nats_url: str, nc: Any) -> None:
    """No handler: the default answer; the event (with its file references) is stored and
    the objects stay for listeners until the TTL."""
    bucket = unique("up")
    service = unique("nobody")
    async with running_edge(nats_url, upload_bucket=bucket) as (client, _edge):
        form = aiohttp.FormData()
        form.add_field("doc", io.BytesIO(b"hello"), filename="a.txt", content_type="text/plain")
        resp = await client.post(f"/upload/{service}/in", data=form)
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
        js = nc.jetstream()
        event = await js.get_last_msg(wire.STREAM, f"in.gen.{service}.in")
        message = wire.decode(event.data)
        assert message["id"] == answer["id"]
        (ref,) = message[wire.FILES_FIELD]
        assert ref["size"] == 5 and ref["object"] == wire.upload_object(service, "in", message["id"], 0)
        assert await files.read(ref, nc=nc) == b"hello"


async def test_a_failing_handler_answers_its_error_and_the_files_stay(nats_url: str, nc: Any) -> None:
    """A handler error is the answer; the event was stored, so its files stay (for
    listeners, a retry by hand) until the bucket's TTL."""
    bucket, service = unique("up"), unique("fails")
    app = App(service)

    @app.expose.handler(name="put")
    async def put(files: list[FileRef]) -> None:
        raise RuntimeError("the import broke")

    async with serve(app, nats_url), running_edge(nats_url, upload_bucket=bucket) as (client, edge):
        await routed(edge, f"in.gen.{service}.put")
        form = aiohttp.FormData()
        form.add_field("doc", io.BytesIO(b"kept"), filename="a.txt")
        resp = await client.post(f"/upload/{service}/put", data=form)
        assert resp.status == 500 and (await resp.json()) == {"message": "Internal Server Error"}
        event = await nc.jetstream().get_last_msg(wire.STREAM, f"in.gen.{service}.put")
        (ref,) = wire.decode(event.data)[wire.FILES_FIELD]
        assert await files.read(ref, nc=nc) == b"kept"


async def test_bad_uploads_answer_clearly(nats_url: str) -> None:
    async with running_edge(nats_url, upload_bucket=unique("up")) as (client, _edge):
        resp = await client.get("/upload/x/y")
        assert resp.status == 405 and "POST" in (await resp.json())["message"]
        resp = await client.post("/upload/x/y", data=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 415 and "multipart/form-data" in (await resp.json())["message"]
        resp = await client.post("/upload/x", data=aiohttp.FormData({"a": "1"}, default_to_multipart=True))
        assert resp.status == 404 and "/upload/<service>/<name>" in (await resp.json())["message"]
        resp = await client.post("/upload/x/y", data=aiohttp.FormData({"a": "1"}, default_to_multipart=True))
        assert resp.status == 400 and "no file" in (await resp.json())["message"]
        resp = await client.post("/upload/x.y/z", data=aiohttp.FormData({"a": "1"}, default_to_multipart=True))
        assert resp.status == 400 and "service" in (await resp.json())["message"]
        health = await client.get("/health")
        assert health.status == 200


async def test_over_the_limit_is_413_and_leaves_nothing(nats_url: str, nc: Any) -> None:
    bucket = unique("up")
    js = nc.jetstream()
    async with running_edge(nats_url, upload_bucket=bucket, upload_max_bytes=2 * MiB) as (client, edge):
        host, port = client.server.host, client.server.port
        # announced too large: refused before a byte is read
        status, body = await raw_upload(host, port, "/upload/x/y", iter([]), length=body_length(3 * MiB))
        assert status == 413 and "larger than 2097152 bytes" in body["message"]
        # streamed without a length: refused once past the limit, the chunks already stored removed
        status, body = await raw_upload(host, port, "/upload/x/y", big_file_body(8 * MiB, 2))
        assert status == 413 and "larger than 2097152 bytes" in body["message"]
        assert edge.uploads.active == 0
        assert await objects_left(js, bucket) == 0
        # the ordinary body limit still holds everywhere else
        plain = await client.post("/track/x", data=io.BytesIO(b"x" * (2 * MiB)), headers={"Content-Type": "text/plain"})
        assert plain.status == 413
        # the edge carries on
        form = aiohttp.FormData()
        form.add_field("f", io.BytesIO(b"small"), filename="s.txt")
        ok = await client.post("/upload/x/y", data=form)
        assert ok.status == 200


async def test_client_gone_mid_upload_leaves_nothing(nats_url: str, nc: Any) -> None:
    bucket = unique("up")
    js = nc.jetstream()
    async with running_edge(nats_url, upload_bucket=bucket) as (client, edge):
        host, port = client.server.host, client.server.port
        reader, writer = await asyncio.open_connection(host, port)
        total = 64 * MiB
        writer.write(
            (f"POST /upload/x/y HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
             f"Content-Length: {body_length(total)}\r\n\r\n").encode()
        )
        sent = 0
        for block in big_file_body(total, 3):
            writer.write(block)
            await writer.drain()
            sent += len(block)
            if sent > 6 * MiB:
                break
        await wait_for(lambda: objects_left(js, bucket), timeout=10, what="chunks of the upload stored")
        writer.transport.abort()  # the client vanishes mid-body
        await wait_for(lambda: edge.uploads.active == 0, timeout=10, what="the edge to notice")
        assert await objects_left(js, bucket) == 0
        resp = await client.get("/health")
        assert resp.status == 200
        form = aiohttp.FormData()
        form.add_field("f", io.BytesIO(b"after"), filename="s.txt")
        assert (await client.post("/upload/x/y", data=form)).status == 200
        reader.feed_eof()


async def test_slow_or_malformed_uploads_leave_nothing(nats_url: str, nc: Any) -> None:
    bucket = unique("up")
    js = nc.jetstream()
    async with running_edge(nats_url, upload_bucket=bucket, upload_idle_timeout_s=0.5) as (client, edge):
        host, port = client.server.host, client.server.port

        blocks = big_file_body(16 * MiB, 6)
        first = [next(blocks) for _ in range(3)]
        status, body = await raw_upload(host, port, "/upload/x/y", iter(first), length=body_length(16 * MiB), stall=True)
        assert status == 408 and "no upload data for 0.5 s" in body["message"]
        await wait_for(lambda: edge.uploads.active == 0, what="the upload to end")
        assert await objects_left(js, bucket) == 0
        garbage = part_head("file", "a.bin") + b"x" * 1000  # no closing boundary, then the body ends
        status, body = await raw_upload(host, port, "/upload/x/y", iter([garbage]), length=len(garbage))
        assert status == 400 and "malformed multipart" in body["message"]
        assert await objects_left(js, bucket) == 0


def raw_part(param: str, filename: bytes) -> bytes:
    """A file part head with a file name of raw bytes (not necessarily UTF-8)."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{param}"; filename="'.encode()
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )


async def test_an_upload_answered_with_an_error_keeps_no_object(nats_url: str, nc: Any) -> None:
    """Nothing accepted is kept when the answer is not 2xx. A file name that is not UTF-8
    was stored, then the message could not be encoded: a 500, its object left behind. An
    event too large for NATS (413) also left its files. Names are now checked before a
    byte is stored; any failure after that removes what was stored."""
    bucket = unique("up")
    js = nc.jetstream()
    async with running_edge(nats_url, upload_bucket=bucket) as (client, edge):
        host, port = client.server.host, client.server.port
        for body, status, problem in (
            (raw_part("file", b"caf\xe9.csv") + b"a,b\r\n1,2\r\n" + b"\r\n" + TAIL, 400, "its file name is not valid UTF-8"),
            (part_head("ok", "ok.bin") + b"x" * 300_000 + b"\r\n" + raw_part("bad", b"\xed\xa0\x80") + b"y\r\n" + TAIL, 400, "part 'bad'"),
            # stored whole, then the event (fields and all) is over NATS's max_payload
            (part_head("note") + b"n" * 1_048_000 + b"\r\n" + part_head("file", "f.bin") + b"z" * 300_000 + b"\r\n" + TAIL, 413, "too large"),
        ):
            got, answer = await raw_upload(host, port, "/upload/x/y", iter([body]), length=len(body))
            assert got == status and problem in answer["message"], (got, answer)
            await wait_for(lambda: edge.uploads.active == 0, what="the upload to end")
            assert await objects_left(js, bucket) == 0, problem


async def test_too_many_uploads_at_once_answer_503(nats_url: str, nc: Any) -> None:
    bucket = unique("up")
    async with running_edge(nats_url, upload_bucket=bucket, upload_max_concurrent=1, upload_idle_timeout_s=2) as (client, edge):
        host, port = client.server.host, client.server.port
        first = asyncio.create_task(raw_upload(host, port, "/upload/x/y", iter([part_head("f", "a.bin"), b"x" * 1000]), length=body_length(MiB), stall=True))
        await wait_for(lambda: edge.uploads.active == 1, what="the first upload streaming")
        status, body = await raw_upload(host, port, "/upload/x/y", big_file_body(MiB, 7), length=body_length(MiB))
        assert status == 503 and "too many uploads" in body["message"]
        assert (await first)[0] == 408  # the stalled one ends by its idle timeout
        status, _ = await raw_upload(host, port, "/upload/x/y", big_file_body(MiB, 7), length=body_length(MiB))
        assert status == 200
        assert await objects_left(nc.jetstream(), bucket) > 0  # the one that succeeded, kept for its TTL


async def test_reading_a_missing_or_altered_file_fails_clearly(nats_url: str, nc: Any) -> None:
    bucket = unique("up")
    async with running_edge(nats_url, upload_bucket=bucket) as (client, _edge):
        form = aiohttp.FormData()
        form.add_field("doc", io.BytesIO(b"hello"), filename="a.txt")
        answer = await (await client.post("/upload/nobody/x", data=form)).json()
        event = await nc.jetstream().get_last_msg(wire.STREAM, "in.gen.nobody.x")
        (ref,) = wire.decode(event.data)[wire.FILES_FIELD]
        assert wire.decode(event.data)["id"] == answer["id"]
        with pytest.raises(files.FileCorrupt, match="expected 5 bytes"):
            await files.read({**ref, "sha256": "0" * 64}, nc=nc)
        with pytest.raises(files.FileMissing, match="no longer in bucket"):
            await files.read({**ref, "object": ref["object"] + "-gone"}, nc=nc)
        with pytest.raises(ValueError, match="not a file reference"):
            await files.read({"name": "x"}, nc=nc)
        with pytest.raises(ValueError, match="over read"):
            await files.read(ref, nc=nc, limit=4)


@pytest.mark.slow
async def test_nats_going_away_mid_upload_answers_503_and_the_edge_recovers(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path / "js").start()
    try:
        async with running_edge(server.url, upload_bucket="gone", publish_timeout_ms=500) as (client, edge):
            host, port = client.server.host, client.server.port
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"POST /upload/x/y HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                         f"Content-Length: {body_length(64 * MiB)}\r\n\r\n".encode())
            blocks = big_file_body(64 * MiB, 8)
            writer.write(b"".join(next(blocks) for _ in range(4)))  # the note, the file head, 2 MiB of it
            await writer.drain()
            await wait_for(lambda: objects_left(js, "gone"), timeout=10, what="chunks stored")
            await nc.close()
            server.kill()  # NATS vanishes mid-upload; the client goes on sending
            with contextlib.suppress(ConnectionError):
                for block in blocks:
                    writer.write(block)
                    await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            assert head.split(b" ", 2)[1] == b"503", head
            writer.transport.abort()
            assert (await client.get("/health")).status == 503  # the edge answers, and says why
            server.start()  # same port, same store
            await wait_for(lambda: edge.pipeline.is_connected, timeout=20, what="the edge to reconnect")
            form = aiohttp.FormData()
            form.add_field("f", io.BytesIO(b"after"), filename="s.txt")
            async def stored() -> bool:
                return (await client.post("/upload/x/y", data=form)).status == 200
            await wait_for(stored, timeout=20, what="uploads to work again", step=0.2)
    finally:
        server.stop()


# --- the edge as its own process: memory stays flat for a 200 MB upload -------------
@asynccontextmanager
async def edge_process(nats_url: str, **env: str) -> AsyncIterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m broker`` on a free port, healthy; on exit SIGTERM, and it must exit 0."""
    port = free_port()
    environ = {**os.environ, "EDGE_STREAM_STORAGE": "memory", "EDGE_DISCOVERY_INTERVAL_S": "0.2", **env}
    edge = subprocess.Popen([sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port), "--nats", nats_url],
                            env=environ, stderr=subprocess.PIPE)

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return True
        except OSError:
            assert edge.poll() is None, edge.stderr.read().decode() if edge.stderr else ""
            return False

    try:
        await wait_for(lambda: asyncio.to_thread(up), timeout=30, what="the edge process")
        yield edge, port
        edge.terminate()
        assert await asyncio.to_thread(edge.wait, 30) == 0
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.wait()
        if edge.stderr is not None:
            edge.stderr.close()


@pytest.mark.slow
async def test_200_mb_upload_streams_through_a_separate_edge(nats_url: str, nc: Any) -> None:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc to read the edge's memory")
    total, seed = 200 * 1000 * 1000, 42
    expected = file_digest(total, seed)
    bucket = unique("up")
    async with receiving(nats_url, nc) as service, edge_process(nats_url, EDGE_UPLOAD_BUCKET=bucket) as (edge, port):
        async def handled() -> bool:  # the edge's discovery has found the handler
            form = aiohttp.FormData()
            form.add_field("f", io.BytesIO(b"probe"), filename="p.bin")
            async with aiohttp.ClientSession() as session, session.post(f"http://127.0.0.1:{port}/upload/{service}/put", data=form) as resp:
                return "files" in await resp.json()

        await wait_for(handled, timeout=10, what="the edge to route uploads to the handler")
        before = memory(edge.pid)
        progress = [0]
        peak = [0]

        async def sample() -> None:
            while True:
                peak[0] = max(peak[0], memory(edge.pid)["VmRSS"])
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/upload/{service}/put", data=chunked(big_file_body(total, seed, progress=progress)),
                                    headers={**MULTIPART, "Content-Length": str(body_length(total))}, timeout=aiohttp.ClientTimeout(total=600)) as resp:
                body = await resp.json()
                status = resp.status
        elapsed = time.perf_counter() - started
        sampler.cancel()
        after = memory(edge.pid)
        assert status == 200, body
        (got,) = body["files"]
        assert got["size"] == total and got["sha256"] == expected == got["ref"]["sha256"]
        assert body["data"] == {"note": "nightly export"}
        hwm = after["VmHWM"]
        stored_s = elapsed - body["read_s"]
        print(f"\n200 MB upload: {total / elapsed / 1e6:.0f} MB/s end to end; into the store {total / stored_s / 1e6:.0f} MB/s "
              f"({stored_s:.1f} s), read back by the handler {total / body['read_s'] / 1e6:.0f} MB/s; "
              f"edge RSS {before['VmRSS'] / MiB:.0f} MiB before, peak {max(peak[0], hwm) / MiB:.0f} MiB (VmHWM {hwm / MiB:.0f} MiB)")
        assert hwm < 150 * MiB, f"edge peak RSS {hwm / MiB:.0f} MiB"


@pytest.mark.slow
async def test_sigterm_mid_upload_stops_cleanly_and_leaves_nothing(nats_url: str, nc: Any) -> None:
    bucket = unique("up")
    js = nc.jetstream()
    async with edge_process(nats_url, EDGE_UPLOAD_BUCKET=bucket, EDGE_SHUTDOWN_TIMEOUT_S="1") as (edge, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST /upload/x/y HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {body_length(64 * MiB)}\r\n\r\n".encode()
        )
        blocks = big_file_body(64 * MiB, 4)
        for _ in range(4):  # a few MB, then the client stalls
            writer.write(next(blocks))
        await writer.drain()
        await wait_for(lambda: objects_left(js, bucket), timeout=10, what="chunks of the upload stored")
        edge.terminate()
        assert await asyncio.to_thread(edge.wait, 30) == 0
        assert await objects_left(js, bucket) == 0
        writer.transport.abort()
        reader.feed_eof()


def test_upload_knobs_from_the_environment_and_refused_values() -> None:
    from broker.config import ConfigError, from_env

    config = from_env({"EDGE_UPLOAD_MAX_BYTES": "1048576", "EDGE_UPLOAD_TTL_S": "3600", "EDGE_UPLOAD_BUCKET": "imports"})
    assert (config.upload_max_bytes, config.upload_ttl_s, config.upload_bucket) == (1048576, 3600.0, "imports")
    for env, problem in (({"EDGE_UPLOAD_MAX_BYTES": "0"}, "upload_max_bytes must be > 0"),
                         ({"EDGE_UPLOAD_BUCKET": "a.b"}, "upload_bucket 'a.b'"),
                         ({"EDGE_UPLOAD_STORAGE": "disk"}, "upload_storage must be file or memory")):
        with pytest.raises(ConfigError, match=problem):
            from_env(env)
