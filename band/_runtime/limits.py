"""How much runs at once and for how long: the in-flight gate and the per-call limit.

The gate bounds a service's in-flight calls. Entering it waits while every slot is
taken, and since the NATS callback waits with it, backpressure reaches NATS (pending
limits) instead of memory growing without bound. A durable consumer reserves slots
before it pulls, so it never fetches more than it can start.

The per-call limit cancels a call past its time and says so (:class:`Overrun`),
telling its own cut apart from a stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any

from .timers import Deadlines


class Overrun(Exception):
    """A call ran past its time limit and was cancelled: a 504."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"did not finish within {limit:g}s and was cancelled")
        self.limit = limit


class Gate:
    """At most ``size`` calls in flight; each runs in its own task."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._slots = asyncio.Semaphore(self.size)
        self._running: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._running)

    async def reserve(self, most: int = 1) -> int:
        """Wait for one free slot, then take up to ``most`` that are free now; how many taken.

        Each reserved slot is either used by :meth:`start` or handed back with :meth:`give_back`.
        """
        await self._slots.acquire()
        taken = 1
        while taken < most and not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            taken += 1
        return taken

    def give_back(self, slots: int) -> None:
        for _ in range(slots):
            self._slots.release()

    def start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in a reserved slot; the slot frees when it ends."""
        task = _start_task(work)
        self._running.add(task)
        task.add_done_callback(self._finished)
        return task

    async def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Wait for a slot, then :meth:`start` ``work`` in it."""
        await self.reserve()
        return self.start(work)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def join(self, timeout: float) -> int:
        """Let the running calls finish within ``timeout``; cancel the rest. How many were cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._running and loop.time() < deadline:
            await asyncio.wait(set(self._running), timeout=deadline - loop.time())
        late = list(self._running)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
        return len(late)


class CallLimit:
    """Cancels a call past its limit (one timer per 0.1 s slot, not one per call)."""

    def __init__(self) -> None:
        self._deadlines = Deadlines()

    async def within(self, limit: float, call: Awaitable[Any]) -> Any:
        """Await ``call`` in the current task; past ``limit`` seconds it is cancelled and :class:`Overrun` raised."""
        task = asyncio.current_task()
        assert task is not None
        slot = self._deadlines.cut(task, limit)
        try:
            return await call
        except asyncio.CancelledError:
            if not self._deadlines.expired(task):
                raise  # a stop, not our limit
            task.uncancel()
            raise Overrun(limit) from None
        finally:
            self._deadlines.release(task, slot)


def _start_task(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task for one call. On Python 3.12+ it starts eagerly: a handler that never
    waits finishes inside the NATS callback, without a trip through the event loop."""
    loop = asyncio.get_running_loop()
    if _EAGER is not None:
        return _EAGER(loop, work)  # type: ignore[no-any-return]
    return loop.create_task(work)


_EAGER = getattr(asyncio, "eager_task_factory", None)

__all__ = ["CallLimit", "Gate", "Overrun"]
