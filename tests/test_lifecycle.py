"""Workers, cleanups, scheduler, blocking: started with the service, stopped with it."""

from __future__ import annotations

import asyncio
import threading
from itertools import count
from typing import Any

import pytest
from support.poll import wait_for

from band import App, blocking
from band.errors import BandError, CleanupFailed
from band.testing import serve


async def test_worker_loop_cancelled_at_stop_and_cleanup_runs(nats_url: str) -> None:
    app = App("life")
    state: dict[str, Any] = {"loop": -1, "loaded": False, "broke": False, "cleaned": False, "slow_cleanup": "never"}

    @app.worker()
    async def service_worker() -> None:  # the documented "advanced example"
        for num in count():
            try:
                if num == 0:
                    state["loaded"] = True
                state["loop"] = num
            except asyncio.CancelledError:
                break
            except Exception:
                app.logger.exception("my service exception")
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                state["broke"] = True
                break

    @app.worker()
    async def crashing() -> None:
        raise RuntimeError("worker bug")

    @app.cleanup()
    async def service_cleanup() -> None:
        state["loaded"] = False
        state["cleaned"] = True

    @app.cleanup(timeout=0.05)
    async def too_slow() -> None:
        state["slow_cleanup"] = "started"
        await asyncio.sleep(10)
        state["slow_cleanup"] = "finished"

    with pytest.raises(CleanupFailed) as reported:
        async with serve(app, nats_url):
            await wait_for(lambda: state["loop"] >= 3, what="worker looping")
            assert state["loaded"]
    assert state["broke"] and state["cleaned"] and not state["loaded"]
    assert state["slow_cleanup"] == "started", "a cleanup past its deadline is cancelled"
    assert "too_slow (TimeoutError)" in str(reported.value), "...and reported once the stop is over"


async def test_every_cleanup_runs_and_the_failures_are_reported_together(nats_url: str) -> None:
    app = App("cleanups")
    ran: list[str] = []

    @app.cleanup()
    async def first() -> None:  # cleanups run in reverse: this one last
        ran.append("first")

    @app.cleanup()
    async def broken() -> None:
        ran.append("broken")
        raise OSError("socket already gone")

    @app.cleanup()
    async def also_broken() -> None:
        ran.append("also_broken")
        raise ValueError("bad state")

    with pytest.raises(CleanupFailed) as reported:
        async with serve(app, nats_url):
            pass
    assert ran == ["also_broken", "broken", "first"], "a failing cleanup does not stop the others"
    assert [type(e) for e in reported.value.exceptions] == [ValueError, OSError]
    assert isinstance(reported.value, BandError)
    assert str(reported.value).startswith("2 cleanup(s) failed: also_broken (ValueError), broken (OSError)")


async def test_scheduler_spawn_logs_failures_and_cancels_at_stop(nats_url: str) -> None:
    app = App("sched")
    events: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def fails() -> None:
        raise ValueError("spawned bug")

    async def returns() -> int:
        return 7

    async with serve(app, nats_url):
        job = await app.scheduler.spawn(forever())  # the documented awaited form
        app.scheduler.spawn(fails())
        result = app.scheduler.spawn(returns())
        assert await result.wait() == 7
        closable = app.scheduler.spawn(forever())
        await wait_for(lambda: app.scheduler.active == 2, what="both forever tasks running")
        await asyncio.sleep(0)  # let the new task reach its first await
        await closable.close()
        assert closable.done and events == ["cancelled"]
        assert not job.done
    assert job.done and events == ["cancelled", "cancelled"]


async def test_blocking_runs_in_a_thread() -> None:
    main = threading.get_ident()

    @blocking()
    def heavy(a: int, b: int) -> tuple[int, int]:
        return a + b, threading.get_ident()

    total, thread = await heavy(10, 30)
    assert total == 40 and thread != main
