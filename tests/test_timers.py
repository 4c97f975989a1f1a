"""The one deadline mechanism: a task cut past its limit, a future failed past its deadline."""

from __future__ import annotations

import asyncio

import pytest

from band._runtime.timers import Deadlines


class Late(Exception):
    pass


async def test_cut_cancels_an_overrunning_task_and_says_so() -> None:
    deadlines = Deadlines(slot_s=0.01)

    async def hang() -> None:
        await asyncio.Event().wait()

    task = asyncio.ensure_future(hang())
    slot = deadlines.cut(task, 0.02)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.expired(task)
    deadlines.release(task, slot)
    assert not deadlines.expired(task)


async def test_fail_fails_a_pending_future_and_leaves_a_done_one() -> None:
    deadlines = Deadlines(slot_s=0.01)
    loop = asyncio.get_running_loop()
    pending, answered = loop.create_future(), loop.create_future()
    deadlines.fail(pending, 0.02, Late)
    deadlines.fail(answered, 0.02, Late)
    answered.set_result("in time")
    with pytest.raises(Late):
        await pending
    assert answered.result() == "in time"
    assert not deadlines.expired(pending)


async def test_a_released_task_is_not_cut_and_close_drops_the_timers() -> None:
    deadlines = Deadlines(slot_s=0.01)
    task = asyncio.ensure_future(asyncio.sleep(0.05))
    deadlines.release(task, deadlines.cut(task, 0.01))
    await task  # finishes: nobody cut it
    other = asyncio.get_running_loop().create_future()
    deadlines.fail(other, 0.01, Late)
    deadlines.close()
    sentinel = asyncio.get_running_loop().create_future()
    Deadlines(slot_s=0.01).fail(sentinel, 0.03, Late)  # fires after other's deadline would have
    with pytest.raises(Late):
        await sentinel
    assert not other.done()


async def test_a_slot_whose_deadlines_are_all_released_keeps_no_timer() -> None:
    """An idle loop is not woken for deadlines nobody waits on any more."""
    deadlines = Deadlines(slot_s=10.0)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    slot = deadlines.fail(first, 1.0, Late)
    assert deadlines.fail(second, 1.0, Late) == slot  # the same slot, one timer
    assert deadlines.armed == 1
    deadlines.release(first, slot)
    assert deadlines.armed == 1  # second still waits on it
    deadlines.release(second, slot)
    assert deadlines.armed == 0
    again = loop.create_future()
    deadlines.release(again, deadlines.fail(again, 1.0, Late))  # a slot can be armed again
    assert deadlines.armed == 0
    assert not first.done() and not second.done()
