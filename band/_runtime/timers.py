"""Deadlines for many calls with few timers: the one deadline mechanism of band and the edge.

``asyncio.timeout`` costs a timer handle per call, which is a measurable share of a
fast RPC or hit. Here a deadline joins a slot of ``slot_s`` seconds: one timer per
slot handles whatever in it is still pending. A deadline fires between its limit and
one slot later, which is what a safety net against hung calls needs.

Two uses, one mechanism: :meth:`Deadlines.cut` cancels a task that overran (a
service's per-call limit); :meth:`Deadlines.fail` fails a future with an exception
(the edge waiting for a reply).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

SLOT_S = 0.1  # services: a call is cut at most 0.1 s late


class Deadlines:
    """Slots of deadlines; :meth:`expired` tells our cut from another cancellation."""

    def __init__(self, slot_s: float = SLOT_S) -> None:
        self._slot_s = slot_s
        # per slot: each pending future and what to fail it with (None: cancel it, a cut)
        self._slots: dict[int, dict[asyncio.Future[Any], type[BaseException] | None]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._cut: set[asyncio.Future[Any]] = set()

    def cut(self, task: asyncio.Task[Any], limit_s: float) -> int:
        """Cancel ``task`` once ``limit_s`` passed; returns the slot for :meth:`release`."""
        return self._add(task, limit_s, None)

    def fail(self, fut: asyncio.Future[Any], limit_s: float, error: type[BaseException]) -> int:
        """Fail ``fut`` with ``error()`` unless it is done within ``limit_s``; returns the
        slot for :meth:`release` once ``fut`` is done."""
        return self._add(fut, limit_s, error)

    def release(self, fut: asyncio.Future[Any], slot: int) -> None:
        """``fut`` is finished with (in time or not): forget it. A slot left empty loses
        its timer, so an idle loop is not woken for a deadline nobody waits on."""
        pending = self._slots.get(slot)
        if pending is not None:
            pending.pop(fut, None)
            if not pending:
                del self._slots[slot]
                timer = self._timers.pop(slot, None)
                if timer is not None:
                    timer.cancel()
        self._cut.discard(fut)

    @property
    def armed(self) -> int:
        """Timers waiting to fire now (one per slot that still holds a deadline)."""
        return len(self._timers)

    def expired(self, task: asyncio.Future[Any]) -> bool:
        """True when ``task`` was cancelled by :meth:`cut` (not by a stop)."""
        return task in self._cut

    def close(self) -> None:
        """Drop every timer (the loop is about to go); pending futures are left as they are."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._slots.clear()

    def _add(self, fut: asyncio.Future[Any], limit_s: float, error: type[BaseException] | None) -> int:
        loop = asyncio.get_running_loop()
        slot = math.ceil((loop.time() + limit_s) / self._slot_s)
        pending = self._slots.get(slot)
        if pending is None:
            pending = self._slots[slot] = {}
            self._timers[slot] = loop.call_at(slot * self._slot_s, self._expire, slot)
        pending[fut] = error
        return slot

    def _expire(self, slot: int) -> None:
        self._timers.pop(slot, None)
        for fut, error in self._slots.pop(slot, {}).items():
            if fut.done():
                continue
            if error is None:
                self._cut.add(fut)
                fut.cancel()
            else:
                fut.set_exception(error())


__all__ = ["SLOT_S", "Deadlines"]
