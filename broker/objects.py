"""Writing one object into a JetStream object store bucket, chunk by chunk as it arrives.

The layout is ADR-20's (subjects in :mod:`band.wire`): data chunks on
``$O.<bucket>.C.<nuid>``, then one info message on ``$O.<bucket>.M.<name>``. Until
that info message is published there is no object, only chunks; :meth:`discard`
purges whatever was written, so an aborted upload leaves nothing behind.

Why not nats-py's ``ObjectStore.put``: it reads a blocking ``readinto`` in the loop's
default thread pool, so each upload would hold one of its few threads for as long as
its client takes to send (and that pool also resolves host names for NATS reconnects).
Here the edge writes the same layout from the event loop, with a few chunks in flight;
nats-py (``object_store(...).get``), the ``nats`` CLI and :mod:`band.files` read it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime
import hashlib
import json

import nats.js.errors
from nats.js import JetStreamContext, api
from nats.nuid import NUID

from band import wire
from band.errors import BandError

WINDOW = 4  # chunks published but not yet acknowledged (memory: WINDOW x chunk size)
_nuids = NUID()


class ObjectWriter:
    """One object being written; ``write`` chunks in order, then ``commit`` or ``discard``."""

    def __init__(self, js: JetStreamContext, bucket: str, name: str, timeout_s: float) -> None:
        self._js = js
        self.bucket = bucket
        self.name = name
        self._stream = wire.object_stream(bucket)
        self._timeout = timeout_s
        self.nuid = _nuids.next().decode()
        self._subject = wire.object_chunks_subject(bucket, self.nuid)
        self._hash = hashlib.sha256()
        self._acks: collections.deque[asyncio.Future[api.PubAck]] = collections.deque()
        self.size = 0
        self.chunks = 0
        self.committed = False

    async def write(self, data: bytes) -> None:
        """Send one chunk; waits only when :data:`WINDOW` chunks are unacknowledged.

        Raises:
            nats.errors.Error: JetStream refused a chunk (bucket full, gone) or is silent.
        """
        while len(self._acks) >= WINDOW:
            await self._oldest_ack()
        self._hash.update(data)
        self._acks.append(await self._js.publish_async(self._subject, data, stream=self._stream))
        self.size += len(data)
        self.chunks += 1

    async def _oldest_ack(self) -> None:
        fut = self._acks.popleft()
        try:
            await asyncio.wait_for(fut, self._timeout)
        except TimeoutError:
            raise StoreTimeout(f"JetStream did not acknowledge a chunk of {self.name} within {self._timeout}s") from None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def commit(self, description: str = "") -> None:
        """Wait for every chunk's ack, then publish the info message: the object exists."""
        while self._acks:
            await self._oldest_ack()
        info = api.ObjectInfo(
            name=self.name,
            bucket=self.bucket,
            nuid=self.nuid,
            size=self.size,
            chunks=self.chunks,
            mtime=datetime.datetime.now(datetime.UTC).isoformat(),
            digest="SHA-256=" + base64.urlsafe_b64encode(self._hash.digest()).decode(),
            description=description or None,
            options=api.ObjectMetaOptions(max_chunk_size=wire.UPLOAD_CHUNK_BYTES),
        )
        await self._js.publish(
            wire.object_meta_subject(self.bucket, self.name),
            json.dumps(info.as_dict()).encode(),
            timeout=self._timeout,
            stream=self._stream,
            headers={wire.OBJECT_ROLLUP_HEADER: wire.OBJECT_ROLLUP_SUBJECT},
        )
        self.committed = True

    async def discard(self) -> None:
        """Remove the chunks (and the info message, if committed): no trace of the object."""
        # chunks still in flight would land after the purge (JetStream stores them and
        # answers API calls on separate paths): let them settle first
        if self._acks:
            await asyncio.wait(list(self._acks), timeout=self._timeout)
        for fut in self._acks:
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # read, so asyncio does not report it as never retrieved
        self._acks.clear()
        await self._js.purge_stream(self._stream, subject=self._subject)
        if self.committed:
            await self._js.purge_stream(self._stream, subject=wire.object_meta_subject(self.bucket, self.name))
            self.committed = False


class StoreTimeout(BandError, TimeoutError):
    """JetStream did not acknowledge within the deadline."""


async def ensure_bucket(js: JetStreamContext, bucket: str, *, ttl_s: float, storage: str, replicas: int) -> None:
    """Create the bucket's stream unless it exists (an existing one keeps its settings)."""
    try:
        await js.stream_info(wire.object_stream(bucket))
        return
    except nats.js.errors.NotFoundError:
        pass
    await js.create_object_store(
        bucket,
        api.ObjectStoreConfig(
            description="files uploaded through the band edge (POST /upload/...)",
            ttl=ttl_s,
            storage=api.StorageType(storage),
            replicas=replicas,
        ),
    )


__all__ = ["WINDOW", "ObjectWriter", "StoreTimeout", "ensure_bucket"]
