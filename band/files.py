"""Reading uploaded files in a handler.

The edge stores each file of ``POST /upload/<service>/<name>`` in the JetStream object
store and hands the handler references (:class:`FileRef`) in ``files``, never the bytes::

    from band.files import FileRef, chunks, local_copy

    @expose.handler(name="import", timeout=60_000)
    async def import_rows(files: list[FileRef], data: dict) -> dict:
        async for chunk in chunks(files[0]): ...
        async with local_copy(files[0]) as path: ...   # for libraries that want a file

Memory stays bounded whatever the size: chunks are fetched a few at a time. Every
read checks the size and SHA-256 the edge recorded, so a reader never sees a file
that differs from the one uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypedDict

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from band import BandError, current_app, wire


class FileRef(TypedDict):
    """One entry of a message's ``files``: where an uploaded file is and what it is."""

    param: str  # the form field it came in
    name: str  # the file name the client gave
    type: str  # the part's Content-Type
    size: int  # bytes
    sha256: str  # hex digest of the bytes
    bucket: str  # JetStream object store bucket
    object: str  # object name in the bucket


class FileMissing(BandError):
    """The file is no longer stored: its bucket's TTL passed, or it was removed."""


class FileCorrupt(BandError):
    """The bytes read back differ from the upload (size or SHA-256)."""


def _connection(nc: Client | None) -> Client:
    return nc if nc is not None else current_app().connection()


def _field(ref: Mapping[str, Any], name: str) -> Any:
    try:
        return ref[name]
    except (KeyError, TypeError):
        raise ValueError(f"not a file reference (no {name!r}): pass an entry of the message's 'files'") from None


async def _info(nc: Client, bucket: str, name: str) -> dict[str, Any]:
    """The object's info message (ADR-20 meta: nuid, size, chunks, digest)."""
    js = nc.jetstream()
    try:
        msg = await js.get_last_msg(wire.object_stream(bucket), wire.object_meta_subject(bucket, name))
    except nats.js.errors.NotFoundError:
        raise FileMissing(f"uploaded file {name!r} is no longer in bucket {bucket!r} (expired or removed)") from None
    info = json.loads(msg.data or b"{}")
    if not isinstance(info, dict) or info.get("deleted") or not info.get("nuid"):
        raise FileMissing(f"uploaded file {name!r} was removed from bucket {bucket!r}")
    return info


async def chunks(ref: Mapping[str, Any], *, nc: Client | None = None) -> AsyncIterator[bytes]:
    """The file's bytes, in order, as chunks of up to 128 KiB.

    ``nc`` defaults to the running service's connection.

    Raises:
        FileMissing: the file expired (the edge's ``upload_ttl_s``) or was removed.
        FileCorrupt: what was read does not match the recorded size and SHA-256.
    """
    bucket, name = str(_field(ref, "bucket")), str(_field(ref, "object"))
    expected = str(_field(ref, "sha256"))
    conn = _connection(nc)
    info = await _info(conn, bucket, name)
    size = int(info.get("size") or 0)
    count = int(info.get("chunks") or 0)
    digest = hashlib.sha256()
    seen = 0
    if count:
        # chunk by chunk with STREAM.MSG.GET (next by subject): no consumer, so a reader needs no
        # grant to create one (a credential that may create consumers could point one at any subject)
        js = conn.jetstream()
        stream = wire.object_stream(bucket)
        subject = wire.object_chunks_subject(bucket, str(info["nuid"]))
        seq = 1
        for read in range(count):
            try:
                msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
            except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
                raise FileCorrupt(f"uploaded file {name!r}: chunk {read + 1} of {count} is missing") from None
            data = msg.data or b""
            seq = int(msg.seq or seq) + 1
            seen += len(data)
            digest.update(data)
            yield data
    if seen != size or digest.hexdigest() != expected:
        raise FileCorrupt(f"uploaded file {name!r}: read {seen} bytes, sha256 {digest.hexdigest()}; expected {size} bytes, sha256 {expected}")


@contextlib.asynccontextmanager
async def local_copy(ref: Mapping[str, Any], *, nc: Client | None = None, dir: str | Path | None = None) -> AsyncIterator[Path]:
    """A temporary file with the upload's bytes, removed when the block ends.

    The file keeps the uploaded name's last component (so ``.csv``, ``.xlsx`` tell a
    library what it is), in a fresh directory under ``dir`` (default: the system's).
    """
    base = PurePosixPath(str(_field(ref, "name")).replace("\\", "/")).name or "upload"
    folder = Path(tempfile.mkdtemp(prefix="band-upload-", dir=dir))
    path = folder / base
    try:
        with open(path, "wb") as out:  # noqa: ASYNC230 - a new file in a fresh local folder opens at once; the writes go through to_thread
            async for chunk in chunks(ref, nc=nc):
                await asyncio.to_thread(out.write, chunk)
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def read(ref: Mapping[str, Any], *, nc: Client | None = None, limit: int = 16 * 1024 * 1024) -> bytes:
    """The whole file in memory, for small files only (``limit`` bytes at most).

    Raises:
        ValueError: the file is larger than ``limit``; use :func:`chunks` or :func:`local_copy`.
    """
    size = int(_field(ref, "size"))
    if size > limit:
        raise ValueError(f"uploaded file is {size} bytes, over read()'s limit of {limit}: use files.chunks() or files.local_copy()")
    return b"".join([chunk async for chunk in chunks(ref, nc=nc)])


__all__ = ["FileCorrupt", "FileMissing", "FileRef", "chunks", "local_copy", "read"]
