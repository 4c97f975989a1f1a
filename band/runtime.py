"""What band's own edge (``broker/``) and panel (``band.panel``) build on, as public names.

A service needs none of it (``from band import ...`` is its API). The edge and the panel
run beside services and must connect, keep the streams, collect ``$SRV`` answers, keep
deadlines, make ids, log and stop exactly as services do: they take those parts from
here, never from ``band._core`` or ``band._runtime``, so the private layout can change
without breaking them. Importing this module does nothing else.
"""

from __future__ import annotations

from ._core.ids import new_id
from ._core.log import configure as configure_logging
from ._core.rpc import RPC
from ._runtime.cancel import every, raise_if_cancelling, retry
from ._runtime.connect import close, connect
from ._runtime.loop import run
from ._runtime.micro import collect
from ._runtime.signals import Signals
from ._runtime.state import nats_url
from ._runtime.stream import STREAM_MAX_AGE, STREAM_MAX_BYTES, StreamLimits, dlq_retention, ensure_dlq_stream, ensure_stream, events_retention
from ._runtime.timers import Deadlines

__all__ = [
    "RPC",
    "STREAM_MAX_AGE",
    "STREAM_MAX_BYTES",
    "Deadlines",
    "Signals",
    "StreamLimits",
    "close",
    "collect",
    "configure_logging",
    "connect",
    "dlq_retention",
    "ensure_dlq_stream",
    "ensure_stream",
    "events_retention",
    "every",
    "nats_url",
    "new_id",
    "raise_if_cancelling",
    "retry",
    "run",
]
