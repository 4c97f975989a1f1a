"""Cut calls that overrun their time limit, cheaply.

``asyncio.timeout`` costs a timer handle per call, which is a measurable share of a
fast RPC. Here a call joins a 0.1 s slot: one timer per slot cancels whatever in it
is still running. A call ends up cut between its limit and 0.1 s later, which is
what a safety net against hung calls needs.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

SLOT_S = 0.1


class Cutter:
    """Cancels watched tasks past their limit; :meth:`expired` tells our cut from others."""

    def __init__(self, slot_s: float = SLOT_S) -> None:
        self._slot_s = slot_s
        self._slots: dict[int, set[asyncio.Task[Any]]] = {}
        self._cut: set[asyncio.Task[Any]] = set()

    def watch(self, task: asyncio.Task[Any], limit_s: float) -> int:
        """Cancel ``task`` once ``limit_s`` passed; returns the slot for :meth:`release`."""
        loop = asyncio.get_running_loop()
        slot = math.ceil((loop.time() + limit_s) / self._slot_s)
        tasks = self._slots.get(slot)
        if tasks is None:
            tasks = self._slots[slot] = set()
            loop.call_at(slot * self._slot_s, self._expire, slot)
        tasks.add(task)
        return slot

    def release(self, task: asyncio.Task[Any], slot: int) -> None:
        """``task`` finished its call (in time or not)."""
        tasks = self._slots.get(slot)
        if tasks is not None:
            tasks.discard(task)
        self._cut.discard(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """True when ``task`` was cancelled by this cutter (not by a stop)."""
        return task in self._cut

    def _expire(self, slot: int) -> None:
        for task in self._slots.pop(slot, ()):
            if not task.done():
                self._cut.add(task)
                task.cancel()
