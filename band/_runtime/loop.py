"""The event loop long-running band processes (``band run``, ``band edge``) run on.

uvloop when it is installed (the ``uvloop`` extra): its C transports and loop make
fewer system calls and less interpreter work per message, which is most of what a
message costs a process that is woken for it. ``BAND_UVLOOP=0`` keeps the standard
asyncio loop (a library that needs it, or asyncio's debug mode).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or ``None`` (asyncio's default) when off or not installed."""
    if os.environ.get("BAND_UVLOOP", "").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


__all__ = ["loop_factory", "run"]
