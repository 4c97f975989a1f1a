"""``scheduler.spawn(coro)``: background tasks owned by the service.

A spawned task's exception is logged, never lost; every task still running at stop is
cancelled. ``spawn`` returns a :class:`Job`, which may also be awaited for the
documented ``await scheduler.spawn(coro)`` form (it returns the same job).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

from .log import Logger


class Job:
    """A handle on one spawned task."""

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task

    def __await__(self) -> Generator[Any, None, Job]:
        if False:  # pragma: no cover - makes this a generator
            yield
        return self

    @property
    def done(self) -> bool:
        return self._task.done()

    async def wait(self) -> Any:
        """Wait for the task and return its result (raises what it raised)."""
        return await self._task

    def close(self) -> asyncio.Future[None]:
        """Cancel the task; the returned future (await it or not) is done once it stopped."""
        self._task.cancel()
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finished(_: asyncio.Task[Any]) -> None:
            if not closed.done():
                closed.set_result(None)

        self._task.add_done_callback(finished)
        return closed


class Scheduler:
    """Owns the tasks a service spawns; :meth:`close` cancels what is left."""

    def __init__(self, logger: Logger) -> None:
        self._logger = logger
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> Job:
        """Run ``coro`` in the background (needs a running service loop)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return Job(task)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._logger.error("spawned task failed", task=task.get_name(), exc_info=exc)

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def close(self, timeout: float = 1.0) -> None:
        """Cancel every task still running and wait (bounded) for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
