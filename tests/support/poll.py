"""The one poller: wait for a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import nats.errors


async def wait_for(
    condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition", step: float = 0.01
) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result  # type: ignore[misc]
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(step)


async def pinged(nc: Any, name: str) -> bool:
    """A ``$SRV.PING.<name>`` answer: the service is subscribed and discoverable."""
    try:
        await nc.request(f"$SRV.PING.{name}", b"", timeout=0.3)
        return True
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return False
