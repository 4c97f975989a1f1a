"""The one poller: wait for a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import nats.errors


class Watched(Protocol):
    """A process a wait depends on (``support.processes.Proc``)."""

    what: str

    def alive(self) -> bool: ...
    def exit_code(self) -> int | None: ...
    def text(self) -> str: ...


async def wait_for(
    condition: Callable[[], Any],
    timeout: float = 5.0,
    what: str = "condition",
    step: float = 0.01,
    procs: Iterable[Watched] = (),
) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds.

    ``procs``: processes the condition depends on; one that exits fails the wait at
    once, with its log, instead of at the timeout.
    """
    procs = list(procs)
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result  # type: ignore[misc]
        if result:
            return
        for proc in procs:
            if not proc.alive():
                raise AssertionError(f"{proc.what} exited with {proc.exit_code()} while waiting for {what}:\n{proc.text()[-4000:]}")
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {p.what}:\n{p.text()[-2000:]}" for p in procs)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{logs}")
        await asyncio.sleep(step)


async def pinged(nc: Any, name: str) -> bool:
    """A ``$SRV.PING.<name>`` answer: the service is subscribed and discoverable."""
    try:
        await nc.request(f"$SRV.PING.{name}", b"", timeout=0.3)
        return True
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return False
