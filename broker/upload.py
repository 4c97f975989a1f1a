"""``POST /upload/<service>/<name>``: multipart files streamed into the object store.

Each file part goes to the bucket (:mod:`broker.objects`) chunk by chunk while it
arrives, so an upload costs the edge a few chunks of memory whatever its size. Then
the message — ordinary form fields and the query as ``data``, the file references as
``files`` — runs through the normal pipeline to the handler of ``in.gen.<service>.<name>``.

What happens to stored files:
- the event is not stored (the upload failed before its message was sent: client gone,
  over the limit, too slow, malformed, NATS down, the edge stopping; or the message was
  refused on its way: too large for NATS, not UTF-8, no JetStream ack): every object of
  the request is removed, so nothing is kept for an answer that is not a success. Part
  names are checked before a byte of the part is stored;
- the event is stored: the objects stay until the bucket's TTL, whatever the handler
  answers (the event in the stream refers to them, so listeners can still read them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import nats.errors
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from nats.aio.client import Client
from nats.js import JetStreamContext

from band import wire
from band.errors import BandError
from band.response import ErrorResponse
from band.runtime import new_id

from .bodies import RETRY_AFTER_S, BodyBudget, Held, OverBudget
from .config import EdgeConfig
from .consent import Consent
from .hit import BadHit, ClientIP, Hit, Parts, check_token, make_hit, td_of
from .objects import WINDOW, ObjectWriter, StoreTimeout, ensure_bucket
from .pipeline import Pipeline
from .render import json_response, render
from .request import busy, cookies_of, parse_path, parse_query, parser_message

log = logging.getLogger("broker.upload")

T = TypeVar("T")
_PLAIN_ENCODINGS = frozenset({"", "binary", "7bit", "8bit"})
# what one upload holds while it streams: the chunks in flight, the one being filled, a read
WORKING_BYTES = (WINDOW + 2) * wire.UPLOAD_CHUNK_BYTES
USAGE = "use POST /upload/<service>/<name> with multipart/form-data (curl -F file=@data.csv ...)"


class UploadUnavailable(BandError):
    """The object store cannot take the upload now (503, try again)."""


@dataclass
class _Upload:
    """One request's progress: what was read, what was stored."""

    service: str
    name: str
    id: str
    fields: dict[str, str] = field(default_factory=dict)
    writers: list[ObjectWriter] = field(default_factory=list)
    refs: list[dict[str, Any]] = field(default_factory=list)
    body_bytes: int = 0
    field_bytes: int = 0


class Uploads:
    """The edge's upload endpoint: limits, the bucket, and the uploads in flight."""

    def __init__(self, config: EdgeConfig, budget: BodyBudget) -> None:
        self.config = config
        self.budget = budget
        self.active = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._bucket_ready = False

    def _jetstream(self, nc: Client) -> JetStreamContext:
        """One context per connection: its async-publish inbox is made once, not per upload."""
        if self._js is None or self._nc is not nc:
            self._nc, self._js = nc, nc.jetstream(timeout=self.config.publish_timeout_ms / 1000)
        return self._js

    async def receive(self, request: web.Request, nc: Client, pipeline: Pipeline, client_ip: ClientIP,
                      consent: Consent | None = None) -> tuple[web.StreamResponse, Hit | None]:
        """Store the files, run the message; the answer and the hit (its uid and cookie), if it got that far."""
        if request.method != "POST":
            resp = json_response({"message": f"{request.method} not allowed on uploads: {USAGE}"}, 405)
            resp.headers["Allow"] = "POST, OPTIONS"
            return resp, None
        if self.active >= self.config.upload_max_concurrent:
            return _refuse(BadHit(503, "too many uploads at once, try again shortly")), None
        self.active += 1
        try:
            with self.budget.hold() as held:
                return await self._receive(request, nc, pipeline, client_ip, held, consent)
        finally:
            self.active -= 1

    async def _receive(self, request: web.Request, nc: Client, pipeline: Pipeline, client_ip: ClientIP, held: Held,
                       consent: Consent | None) -> tuple[web.StreamResponse, Hit | None]:
        config = self.config
        try:
            service, name = self._target(request)
            query = parse_query(request.rel_url.raw_query_string, config.max_fields)
            td = td_of(request.headers, request.remote, client_ip)
            held.take(WORKING_BYTES)
        except BadHit as bad:
            return _refuse(bad), None
        except OverBudget as exc:
            return _refuse(busy(exc)), None
        upload = _Upload(service, name, new_id())  # the id first: the objects are named after it
        stored = False
        try:
            try:
                await self._read(request, upload, self._jetstream(nc), held)
            except Exception as exc:
                if isinstance(exc, BadHit):
                    return _refuse(exc), None
                if isinstance(exc, OverBudget):
                    return _refuse(busy(exc)), None
                if isinstance(exc, UploadUnavailable):
                    return _refuse(BadHit(503, str(exc))), None
                if isinstance(exc, (aiohttp.ClientError, ConnectionError)):
                    log.info("upload to %s/%s interrupted: %r", service, name, exc)
                    return _refuse(BadHit(400, "upload interrupted before the end of the body")), None
                raise
            if not upload.refs:
                return _refuse(BadHit(400, f"no file in the upload: {USAGE}")), None
            cookie, choice = cookies_of(request, config)
            hit = make_hit(
                Parts(
                    channel="http", service=service, name=name, query=query, payload=upload.fields,
                    cookie=cookie, td=td, id=upload.id, files=upload.refs, headers=request.headers, method=request.method,
                    path=request.path, choice=choice,
                ),
                config.aliases,
                consent,
            )
            answer, stored = await pipeline.run_stored(hit)
            if stored and isinstance(answer, ErrorResponse) and answer.statusCode >= 500:
                log.warning("upload %s to %s answered %d; its files stay until the bucket's TTL", upload.id, hit.message["key"], answer.statusCode)
            return render(answer), hit
        finally:
            if not stored:  # no event refers to them: whatever went wrong, take nothing half-kept with us
                await asyncio.shield(self._discard(upload))

    def _target(self, request: web.Request) -> tuple[str, str]:
        segments = parse_path(request.raw_path).segments
        if len(segments) != 3:
            raise BadHit(404, f"no route: {USAGE}")
        service = self.config.aliases.get(segments[1], segments[1])  # the objects are named after the service itself
        return check_token("service", service), check_token("name", segments[2])

    # --- reading the body -----------------------------------------------------------
    async def _idle(self, step: Awaitable[T]) -> T:
        """One read from the client, which must send something every idle-timeout (and,
        once the edge stops, finish within the stop's share for reads)."""
        try:
            async with self.budget.stopping.reading(self.config.upload_idle_timeout_s):
                return await step
        except TimeoutError:
            if self.budget.stopping.active:
                raise BadHit(503, "the edge is shutting down before the upload arrived: send it again", retry_after=RETRY_AFTER_S) from None
            raise BadHit(408, f"no upload data for {self.config.upload_idle_timeout_s:g} s") from None

    async def _read(self, request: web.Request, upload: _Upload, js: JetStreamContext, held: Held) -> None:
        config = self.config
        if request.content_type != "multipart/form-data":
            raise BadHit(415, f"upload body is {request.content_type or 'untyped'}: {USAGE}")
        if request.content_length is not None and request.content_length > config.upload_max_bytes:
            raise BadHit(413, f"upload larger than {config.upload_max_bytes} bytes")
        try:
            reader = await request.multipart()
            while True:
                part = await self._idle(reader.next())
                if part is None:
                    return
                if not isinstance(part, BodyPartReader):
                    raise BadHit(400, "nested multipart bodies are not supported: send each file as its own part")
                if len(upload.fields) + len(upload.refs) >= config.max_fields:
                    raise BadHit(400, f"too many form parts (limit {config.max_fields})")
                if part.name is None:
                    raise BadHit(400, "a form part has no name (Content-Disposition: form-data; name=...)")
                _check_part(part)
                if part.filename is None:
                    await self._read_field(part, upload, held)
                else:
                    await self._store_file(part, upload, js)
        except ValueError as exc:  # aiohttp's multipart parser
            raise BadHit(400, f"malformed multipart body: {exc}") from None
        except HttpProcessingError as exc:  # a malformed part header (InvalidHeader), a body cut short
            raise BadHit(400, f"malformed multipart body: {parser_message(exc.message)}") from None

    def _count(self, upload: _Upload, n: int) -> None:
        upload.body_bytes += n
        if upload.body_bytes > self.config.upload_max_bytes:
            raise BadHit(413, f"upload larger than {self.config.upload_max_bytes} bytes")

    async def _read_field(self, part: BodyPartReader, upload: _Upload, held: Held) -> None:
        raw = bytearray()
        while chunk := await self._idle(part.read_chunk(8192)):
            self._count(upload, len(chunk))
            upload.field_bytes += len(chunk)
            if upload.field_bytes > self.config.max_body_bytes:
                raise BadHit(413, f"form fields larger than {self.config.max_body_bytes} bytes")
            held.take(len(chunk))  # fields are kept until the message is sent: they count
            raw += chunk
        try:
            upload.fields[str(part.name)] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadHit(400, f"form field {part.name!r} is not valid UTF-8") from None

    async def _store_file(self, part: BodyPartReader, upload: _Upload, js: JetStreamContext) -> None:
        chunk_bytes = wire.UPLOAD_CHUNK_BYTES
        writer: ObjectWriter | None = None
        pending = bytearray()
        try:
            while data := await self._idle(part.read_chunk(chunk_bytes)):
                self._count(upload, len(data))
                if writer is None:
                    await self._ensure_bucket(js)
                    index = len(upload.writers)
                    writer = ObjectWriter(
                        js, self.config.upload_bucket, wire.upload_object(upload.service, upload.name, upload.id, index), self.config.publish_timeout_ms / 1000
                    )
                    upload.writers.append(writer)
                pending += data
                while len(pending) >= chunk_bytes:
                    await writer.write(bytes(pending[:chunk_bytes]))
                    del pending[:chunk_bytes]
            if writer is None:
                if not part.filename:
                    return  # a browser's empty file input: no file chosen
                await self._ensure_bucket(js)
                writer = ObjectWriter(
                    js,
                    self.config.upload_bucket,
                    wire.upload_object(upload.service, upload.name, upload.id, len(upload.writers)),
                    self.config.publish_timeout_ms / 1000,
                )
                upload.writers.append(writer)
            if pending:
                await writer.write(bytes(pending))
            await writer.commit(part.filename or "")
        except (nats.errors.Error, StoreTimeout) as exc:
            log.warning("upload %s: object store refused a chunk: %r", upload.id, exc)
            raise UploadUnavailable("upload storage is unavailable or full, try again later") from None
        upload.refs.append(
            {
                "param": part.name,
                "name": part.filename or "",
                "type": part.headers.get("Content-Type", "application/octet-stream"),
                "size": writer.size,
                "sha256": writer.sha256,
                "bucket": writer.bucket,
                "object": writer.name,
            }
        )

    async def _ensure_bucket(self, js: JetStreamContext) -> None:
        if self._bucket_ready:
            return
        config = self.config
        try:
            await ensure_bucket(js, config.upload_bucket, ttl_s=config.upload_ttl_s, storage=config.upload_storage, replicas=config.stream_replicas)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("upload bucket %s not ready: %r", config.upload_bucket, exc)
            raise UploadUnavailable("upload storage is unavailable, try again later") from None
        self._bucket_ready = True

    async def _discard(self, upload: _Upload) -> None:
        """Remove every object of a failed upload; the bucket's TTL catches what this misses."""
        for writer in upload.writers:
            try:
                # at least a moment even when a stop has used up its time: a purge takes milliseconds
                async with asyncio.timeout(max(0.5, self.budget.stopping.left(self.config.publish_timeout_ms / 1000))):
                    await writer.discard()
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                log.warning("upload %s: object %s not removed (%r); it expires with the bucket's TTL", upload.id, writer.name, exc)
        upload.writers.clear()

    def reset(self) -> None:
        """After a reconnect the bucket may be gone (a server restarted without its store)."""
        self._bucket_ready = False


def _check_part(part: BodyPartReader) -> None:
    """Refuse a part whose name, file name or type is not UTF-8 before a byte of it is
    stored: they go into the message, which could not be published with them.

    Raises:
        BadHit: 400 naming the part.
    """
    encoding = part.headers.get("Content-Transfer-Encoding", "").lower()
    if encoding not in _PLAIN_ENCODINGS or part.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise BadHit(400, f"part {part.name!r}: send the bytes as they are (no transfer or content encoding)")
    for what, value in (("name", part.name), ("file name", part.filename), ("Content-Type", part.headers.get("Content-Type"))):
        if value is not None and not value.isascii() and wire.lone_surrogate(value) is not None:
            raise BadHit(400, f"part {part.name!r}: its {what} is not valid UTF-8; send names in UTF-8")


def _refuse(bad: BadHit) -> web.Response:
    """A refusal that closes the connection: the rest of a refused body is not read."""
    resp = json_response({"message": bad.message}, bad.status)
    if bad.retry_after is not None:
        resp.headers["Retry-After"] = str(bad.retry_after)
    resp.force_close()
    return resp


__all__ = ["USAGE", "Uploads"]
