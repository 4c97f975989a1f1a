"""The JetStream stream that keeps every event (``in.>``), shared by the edge and services.

Whoever starts first creates it; an existing stream is used as it is, so an operator
can size it (replicas, limits) with the nats CLI and nobody overwrites that.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from .. import wire


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
    try:
        await js.stream_info(name)
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(stream_config(limits, name))
    except BadRequestError:
        await js.stream_info(name)  # created by someone else meanwhile; raises if still absent
