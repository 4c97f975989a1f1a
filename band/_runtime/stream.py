"""The JetStream stream that keeps every event (``in.>``), shared by the edge and services.

Whoever starts first creates it; an existing stream is used as it is, so an operator
can size it (replicas, limits) with the nats CLI and nobody overwrites that. Under the
shipped nats.conf only the edge and the store may create it: a service's durable
listeners wait for it instead (:func:`await_stream`), so no service decides its limits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from .. import wire
from .._core.log import Logger
from ..errors import ConfigError

STREAM_POLL_S = 1.0  # how often a service that may not create the stream looks for it


@dataclass(frozen=True)
class StreamLimits:
    """Limits for a stream band creates; an existing stream keeps its own."""

    max_age_s: float = 7 * 24 * 3600.0
    max_bytes: int = -1
    max_msgs: int = -1
    replicas: int = 1
    duplicate_window_s: float = 120.0
    storage: str = "file"


def stream_config(limits: StreamLimits = StreamLimits(), name: str = wire.STREAM) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=[wire.EVENTS_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.MEMORY if limits.storage == "memory" else StorageType.FILE,
        max_age=limits.max_age_s,
        max_bytes=limits.max_bytes,
        max_msgs=limits.max_msgs,
        num_replicas=limits.replicas,
        duplicate_window=limits.duplicate_window_s,
    )


async def ensure_stream(js: JetStreamContext, limits: StreamLimits = StreamLimits(), name: str = wire.STREAM) -> None:
    """Create the events stream unless it exists (a concurrent creator is fine)."""
    await _ensure(js, stream_config(limits, name))


async def await_stream(js: JetStreamContext, logger: Logger, limits: StreamLimits = StreamLimits()) -> None:
    """:func:`ensure_stream`, and when the create goes unanswered (a credential that may
    not create the stream: nats-server drops the request as a permissions violation),
    wait until the edge or the store has created it.

    Raises:
        ConfigError: nobody answers whether the stream exists (no JetStream, or no grant).
    """
    if await _stream_exists(js):
        return
    try:
        await ensure_stream(js, limits)
        return
    except NatsTimeout:
        pass
    logger.warning("the events stream does not exist and this service may not create it; waiting for the edge or "
                   "the store to create it (start one of them)", stream=wire.STREAM)
    while not await _stream_exists(js):  # noqa: ASYNC110 - the stream is made by another process: nothing here to wait on but NATS
        await asyncio.sleep(STREAM_POLL_S)


async def _stream_exists(js: JetStreamContext) -> bool:
    try:
        await js.stream_info(wire.STREAM)
        return True
    except NotFoundError:
        return False
    except NatsTimeout:
        raise ConfigError(f"no answer about the events stream {wire.STREAM}: is JetStream on, and does nats.conf grant "
                          f"this user {wire.JS_API}.STREAM.INFO.{wire.STREAM} (docs/operating.md, Adding a service)?") from None


async def _ensure(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.stream_info(config.name)  # created by someone else meanwhile; raises if still absent


def dlq_stream_config() -> StreamConfig:
    """``BAND_DLQ`` over ``band.dlq.>``: dead letters kept 30 days, for the panel to replay."""
    return StreamConfig(
        name=wire.DLQ_STREAM,
        subjects=[wire.DLQ_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=30 * 24 * 3600.0,
    )


async def ensure_dlq_stream(js: JetStreamContext) -> None:
    """Create the dead-letter stream unless it exists."""
    await _ensure(js, dlq_stream_config())
