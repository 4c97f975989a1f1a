"""The JetStream stream that keeps every event (``in.>``), shared by the edge and services.

Whoever starts first creates it; an existing stream is used as it is, so an operator
can size it (replicas, limits) with the nats CLI and nobody overwrites that but
``band provision``, and that only for its age and size (below). Under the
shipped nats.conf only the edge and the store may create it: a service's durable
listeners wait for it instead (:func:`await_stream`), so no service decides its limits.

How long and how much the events stream and the dead-letter stream keep is one setting
each, read here alone (:func:`events_retention`, :func:`dlq_retention`) by every process
that makes a stream; ``band provision`` (the operator's credential) brings an existing
stream to it (:func:`apply_retention`), the others only say when it differs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from .. import wire
from .._core.log import Logger
from .._core.units import DAY_S, duration, size
from ..errors import ConfigError

STREAM_POLL_S = 1.0  # how often a service that may not create the stream looks for it
# The settings (environment variables) and their defaults: the events stream keeps a week
# (time to replay into a store that was down), dead letters a month (time to repair and replay).
STREAM_MAX_AGE, STREAM_MAX_BYTES, STREAM_DEFAULT_AGE = "BAND_STREAM_MAX_AGE", "BAND_STREAM_MAX_BYTES", "7 days"
DLQ_MAX_AGE, DLQ_MAX_BYTES, DLQ_DEFAULT_AGE = "BAND_DLQ_MAX_AGE", "BAND_DLQ_MAX_BYTES", "30 days"


@dataclass(frozen=True)
class Retention:
    """How long and how much a stream keeps, as JetStream counts: ``max_age`` in seconds
    (0: no limit) and ``max_bytes`` (-1: no limit); the oldest messages go first."""

    max_age_s: float
    max_bytes: int = -1

    def differs(self, config: StreamConfig) -> str:
        """What a stream's config keeps otherwise, for a log line; "" when it keeps this."""
        found = _kept(config)
        if found == self:
            return ""
        return f"keeps {found}; config says {self}"

    def __str__(self) -> str:
        age = self.max_age_s
        ages = "any age" if not age else f"{age / DAY_S:g} days" if age % DAY_S == 0 else f"{age:g} s"
        return f"{ages}, {'any size' if self.max_bytes < 0 else f'at most {self.max_bytes} bytes'}"


def _retention(age_var: str, bytes_var: str, default_age: str, env: Mapping[str, str] | None) -> Retention:
    env = os.environ if env is None else env
    age = duration(env.get(age_var, default_age), age_var)
    most = size(env.get(bytes_var), bytes_var)
    return Retention(float(age.seconds) if age else 0.0, -1 if most is None else most)


def events_retention(env: Mapping[str, str] | None = None) -> Retention:
    """The events stream's ``BAND_STREAM_MAX_AGE`` (default 7 days) and ``BAND_STREAM_MAX_BYTES``
    (default none), from ``env`` or the environment.

    Raises:
        ConfigError: a value that is not a duration or a size, naming its variable.
    """
    return _retention(STREAM_MAX_AGE, STREAM_MAX_BYTES, STREAM_DEFAULT_AGE, env)


def dlq_retention(env: Mapping[str, str] | None = None) -> Retention:
    """The dead-letter stream's ``BAND_DLQ_MAX_AGE`` (default 30 days) and ``BAND_DLQ_MAX_BYTES``.

    Raises:
        ConfigError: a value that is not a duration or a size, naming its variable.
    """
    return _retention(DLQ_MAX_AGE, DLQ_MAX_BYTES, DLQ_DEFAULT_AGE, env)


@dataclass(frozen=True)
class StreamLimits:
    """Limits for a stream band creates; an existing stream keeps its own. How long and
    how much it keeps is :func:`events_retention`'s unless given here (tests)."""

    max_msgs: int = -1
    replicas: int = 1
    duplicate_window_s: float = 120.0
    storage: str = "file"
    retention: Retention | None = None


def stream_config(limits: StreamLimits = StreamLimits(), name: str = wire.STREAM) -> StreamConfig:
    kept = limits.retention or events_retention()
    return StreamConfig(
        name=name,
        subjects=[wire.EVENTS_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.MEMORY if limits.storage == "memory" else StorageType.FILE,
        max_age=kept.max_age_s,
        max_bytes=kept.max_bytes,
        max_msgs=limits.max_msgs,
        num_replicas=limits.replicas,
        duplicate_window=limits.duplicate_window_s,
    )


async def ensure_stream(js: JetStreamContext, limits: StreamLimits = StreamLimits(), name: str = wire.STREAM) -> str:
    """Create the events stream unless it exists (a concurrent creator is fine).

    Returns:
        How an existing stream's retention differs from config ("" when it does not):
        the caller logs it; ``band provision`` applies it.
    """
    return await _ensure(js, stream_config(limits, name))


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


async def _ensure(js: JetStreamContext, config: StreamConfig) -> str:
    assert config.name is not None
    try:
        return _kept(config).differs((await js.stream_info(config.name)).config)
    except NotFoundError:
        pass
    try:
        await js.add_stream(config)
    except BadRequestError:
        return _kept(config).differs((await js.stream_info(config.name)).config)  # made by someone else meanwhile; raises if absent
    return ""


def _kept(config: StreamConfig) -> Retention:
    return Retention(float(config.max_age or 0), -1 if config.max_bytes is None else int(config.max_bytes))


async def apply_retention(js: JetStreamContext, config: StreamConfig) -> str:
    """Create the stream, or bring an existing one's ``max_age`` and ``max_bytes`` to ``config``
    (its other settings, such as replicas sized by an operator, stay). Needs the
    credential that may update the stream (the operator's, under the shipped nats.conf).

    Returns:
        What changed ("" for nothing), for the caller to print.
    """
    assert config.name is not None
    try:
        found = (await js.stream_info(config.name)).config
    except NotFoundError:
        await js.add_stream(config)
        return f"created, keeping {_kept(config)}"
    change = _kept(config).differs(found)
    if change:
        await js.update_stream(dataclasses.replace(found, max_age=config.max_age, max_bytes=config.max_bytes))
    return change


def dlq_stream_config(retention: Retention | None = None) -> StreamConfig:
    """``BAND_DLQ`` over ``band.dlq.>``: dead letters kept by :func:`dlq_retention`, for the panel to replay."""
    kept = retention or dlq_retention()
    return StreamConfig(
        name=wire.DLQ_STREAM,
        subjects=[wire.DLQ_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=kept.max_age_s,
        max_bytes=kept.max_bytes,
    )


async def ensure_dlq_stream(js: JetStreamContext) -> str:
    """Create the dead-letter stream unless it exists; how an existing one differs from config."""
    return await _ensure(js, dlq_stream_config())
