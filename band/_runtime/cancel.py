"""Loops that retry must still end when they are cancelled: the one polling loop
(:func:`every`), the one retry loop (:func:`retry`), and what they stand on.

Shutdown is cancellation, and on Python 3.11 a cancellation can be lost: when
``asyncio.wait_for`` is cancelled in the same loop iteration as its inner future
completes, it returns the result instead of raising (fixed in 3.12). nats-py's
``request`` and ``fetch`` wait that way, so a loop that catches errors around them
and goes round again could miss its stop and keep a process from exiting. The task
still remembers it was asked to stop (``Task.cancelling()``); each round checks.

    while True:
        try:
            await poll()            # may swallow the cancel on 3.11
        except Exception:
            log.exception(...)
        raise_if_cancelling()       # ... but the loop ends here
        await asyncio.sleep(interval)

That loop is written once, as :func:`every`; "try until it works" once, as :func:`retry`.
Neither waits with ``wait_for``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
Failed = Callable[[Exception], None]  # told of each failed round (to log it); the loop goes on
RECANCEL_S = 0.05  # how often a cancel is repeated while the work has not ended
RECANCEL_FOR_S = 5.0  # after this the work is left to the loop's own teardown


def raise_if_cancelling() -> None:
    """Raise :class:`asyncio.CancelledError` when the current task was asked to stop,
    even if the cancellation was swallowed on its way up."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancellable(work: Coroutine[Any, Any, T], late: Callable[[T], Awaitable[object]] | None = None) -> T:
    """Await ``work`` in a task of its own; when cancelled, cancel it until it has ended.

    For a loop that retries inside a library, out of reach of :func:`raise_if_cancelling`:
    nats-py's first connect tries again and again, each attempt under ``wait_for``, and a
    cancel that lands as an attempt fails is swallowed there, so the connect (and the
    process stopping) would go on forever. A cancel repeated a moment later lands while
    it waits between attempts. A result that came in all the same goes to ``late`` (a
    connection to close); an error is retrieved, never logged as lost.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + RECANCEL_FOR_S
        while not task.done() and loop.time() < give_up:
            task.cancel()
            await asyncio.wait([task], timeout=RECANCEL_S)
        if task.done() and not task.cancelled() and task.exception() is None and late is not None:
            await late(task.result())
        raise


__all__ = ["cancellable", "raise_if_cancelling"]


async def every(interval_s: float, step: Callable[[], Awaitable[object]], failed: Failed,
                started: asyncio.Event | None = None) -> None:
    """Run ``step`` every ``interval_s`` seconds until cancelled. A step that raises is
    handed to ``failed`` and the next round tries again; a cancel a step swallowed still
    ends the loop. ``started`` is set after the first round, whatever it did."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a loop that survives any error of one round
            failed(exc)
        raise_if_cancelling()
        if started is not None:
            started.set()
        await asyncio.sleep(interval_s)


async def retry(step: Callable[[], Awaitable[T]], interval_s: float, failed: Failed,
                errors: tuple[type[Exception], ...] = (Exception,)) -> T:
    """``step``'s result, trying again every ``interval_s`` while it raises one of
    ``errors`` (each handed to ``failed``); ends when cancelled, even if a try swallowed it."""
    while True:
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except errors as exc:
            failed(exc)
        raise_if_cancelling()
        await asyncio.sleep(interval_s)
