"""Time-ordered 64-bit ids, written as decimal strings.

Rockstat issued ids as ``milliseconds << 22 | low bits``; we keep that layout so the
``uid`` cookies already in browsers stay valid and new ids sort after them. The low
22 bits are a 10-bit node number (random per process) and a 12-bit sequence.
"""

from __future__ import annotations

import os
import threading
import time

_SEQ_BITS = 12
_NODE_BITS = 10
_TIME_SHIFT = _SEQ_BITS + _NODE_BITS


class IdGenerator:
    """Monotonic within a process; unique across processes by the node bits."""

    def __init__(self, node: int | None = None) -> None:
        self._node = (node if node is not None else int.from_bytes(os.urandom(2), "big")) & ((1 << _NODE_BITS) - 1)
        self._last_ms = 0
        self._seq = 0
        self._lock = threading.Lock()

    def next_int(self) -> int:
        with self._lock:
            now = time.time_ns() // 1_000_000
            if now <= self._last_ms:
                now = self._last_ms
                self._seq = (self._seq + 1) & ((1 << _SEQ_BITS) - 1)
                if self._seq == 0:  # 4096 ids in one millisecond: borrow the next one
                    now += 1
            else:
                self._seq = 0
            self._last_ms = now
            return (now << _TIME_SHIFT) | (self._node << _SEQ_BITS) | self._seq

    def next(self) -> str:
        return str(self.next_int())


def id_time_ms(value: str | int) -> int:
    """The milliseconds since the epoch stored in an id."""
    return int(value) >> _TIME_SHIFT


_default = IdGenerator()


def new_id() -> str:
    """A new time-ordered id as a decimal string (``^[0-9]{10,22}$``)."""
    return _default.next()
