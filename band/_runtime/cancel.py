"""Loops that retry must still end when they are cancelled.

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
"""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Raise :class:`asyncio.CancelledError` when the current task was asked to stop,
    even if the cancellation was swallowed on its way up."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


__all__ = ["raise_if_cancelling"]
