"""``@blocking()``: a sync function becomes awaitable in a worker thread.

CPU-bound or blocking code would otherwise stall every request of the service.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread

R = TypeVar("R")


def blocking() -> Callable[[Callable[..., R]], Callable[..., Awaitable[R]]]:
    """Decorate a plain ``def``; calling it returns an awaitable run in a thread."""

    def wrap(fn: Callable[..., R]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> R:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

        return run

    return wrap
