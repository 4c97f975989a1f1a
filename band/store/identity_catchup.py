"""At start, the identity changes of events delivered before and not acked, applied in
stream order before the writer takes new events.

A store that stopped with events in hand (a crash, or fetched ahead of its batch) gets
them again only after the ack wait, after newer ones; the identity graph must see them in
stream order. So at start the store reads them once more, from its consumer's ack floor
to the last sequence it delivered, on a consumer of its own (``store_identity``, no acks,
deleted when done), applies their identity changes and inserts the rows, exactly once as
the writer does. When they come back to the writer, their changes are already applied
(at or below the graph's sequence) and only their event rows are written.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any, NamedTuple

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from .. import wire
from .identity import Identities
from .identity_graph import Change
from .prepare import prepare_with
from .rows import RowBuilder
from .writer import delivery

CATCH_UP = "store_identity"
CHUNK = 1000
WAIT_S = 2.0


class Pending(NamedTuple):
    """An event's identity change, read again (what the graph needs of a writer's item)."""

    seq: int
    ms: int
    id: int
    identity: Change | None


async def catch_up(js: JetStreamContext, engine: Any, identities: Identities, builder: RowBuilder, floor: int,
                   delivered: int, counts: Counter[str]) -> int:
    """Apply the changes of sequences ``floor + 1`` to ``delivered`` not yet in the graph;
    how many events were read."""
    start = max(floor, identities.graph.applied) + 1
    if delivered < start:
        return 0
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(wire.STREAM, CATCH_UP)  # left by a start that died here
    await js.add_consumer(wire.STREAM, ConsumerConfig(
        durable_name=CATCH_UP, ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start, filter_subject=wire.EVENTS_SUBJECTS))
    pending: list[Pending] = []
    read, seq = 0, start - 1
    try:
        psub = await js.pull_subscribe_bind(CATCH_UP, stream=wire.STREAM)
        while seq < delivered:
            try:
                msgs = await psub.fetch(min(CHUNK, delivered - seq), timeout=WAIT_S)
            except (TimeoutError, nats.errors.TimeoutError):
                break  # nothing more: the rest was deleted from the stream
            wanted = [m for m in msgs if delivery(m.reply)[0] <= delivered]
            stream = [delivery(m.reply) for m in wanted]
            prepared = prepare_with(builder, [m.data for m in wanted],
                                    [(((ms << 22) | (s & 0x3FFFFF)) & (2**64 - 1), ms, s) for s, ms, _ in stream])
            for (s, _, _), event_id, ms, change in zip(stream, prepared.ids, prepared.ms, prepared.changes, strict=True):
                if change is not None:
                    pending.append(Pending(s, ms, event_id, change))
            read += len(wanted)
            seq = max([seq, *(s for s, _, _ in stream)])
            if len(wanted) < len(msgs):
                break
        await psub.unsubscribe()
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(wire.STREAM, CATCH_UP)
    async with engine.lock:
        rows = identities.apply(pending, live=False)
        await identities.insert(engine, rows, set(), True, counts)
        identities.graph.applied = max(identities.graph.applied, delivered)
        identities.done(delivered)
    return read


__all__ = ["CATCH_UP", "Pending", "catch_up"]
