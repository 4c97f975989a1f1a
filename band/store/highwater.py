"""The high-water mark: the highest stream sequence that may already be in the store.

JetStream's delivery count cannot say whether a message may be stored: a nats-server
that restarts after a crash can roll its consumers' ack state back and deliver stored
messages again as first deliveries. The store keeps each row's stream sequence
(``stream_seq``), so it can tell for itself: a message at or below the mark may be
stored and is looked up by id before it is written; one above it cannot be, and costs
nothing. The writer reads the mark from the store when it starts and after every NATS
reconnect, and raises it before each insert (see :mod:`.writer`).
"""

from __future__ import annotations

from collections.abc import Iterable

from .backend import Backend
from .config import STREAM_SEQ
from .schema import quote


def stored_max(backend: Backend, database: str, tables: Iterable[str]) -> int:
    """``max(stream_seq)`` over ``tables`` (0 when they are empty). Blocking: run it in
    the engine's thread. It reads the whole column once, so it runs at start and after a
    reconnect, never per batch."""
    column = quote(STREAM_SEQ.name)
    parts = " UNION ALL ".join(f"SELECT max({column}) AS seq FROM {quote(database)}.{quote(table)}"
                               for table in sorted(tables))
    rows = backend.select(f"SELECT max(seq) AS seq FROM ({parts})")["rows"]
    return int(rows[0]["seq"] or 0) if rows else 0  # chDB may quote a UInt64 in JSON


class HighWater:
    """The mark, shared by every writer of one store process (one engine)."""

    def __init__(self) -> None:
        self.seq = 0
        self.epoch: int | None = None  # the connection's reconnect count when last read; None: never read

    def covers(self, seq: int) -> bool:
        """``seq`` may already be stored."""
        return seq <= self.seq

    def raise_to(self, seq: int) -> None:
        if seq > self.seq:
            self.seq = seq

    def settle(self, stored: int, stream_last: int | None, epoch: int) -> None:
        """Take ``stored`` (from :func:`stored_max`), read on connection ``epoch``.

        It only raises the mark: what this process is inserting right now may not be
        in ``stored`` yet. ``stream_last`` (the stream's last sequence, when known) caps
        it: a stream made again starts its sequences over, and a mark above every
        sequence it holds would look up each event until the stream caught up.
        """
        self.raise_to(min(stored, stream_last) if stream_last is not None else stored)
        self.epoch = epoch


__all__ = [
    "HighWater",
    "stored_max",
]
