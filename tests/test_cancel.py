"""A cancel that a step swallowed (Python 3.11's ``wait_for``) still ends the work."""

from __future__ import annotations

import asyncio

from support.poll import wait_for

from band._runtime.cancel import cancellable, raise_if_cancelling


async def swallows_the_first_cancel(rounds: list[str]) -> str:
    """Retries inside itself, as nats-py's first connect does; its first cancel is lost."""
    swallowed = False
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True  # what wait_for does when the cancel and a result meet
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
        rounds.append("retry")


async def test_cancellable_ends_work_that_swallowed_a_cancel() -> None:
    rounds: list[str] = []
    outer = asyncio.ensure_future(cancellable(swallows_the_first_cancel(rounds)))
    await wait_for(lambda: len(rounds) >= 3, 5, "three rounds of the work")
    outer.cancel()
    done, _ = await asyncio.wait([outer], timeout=2)
    assert outer in done and outer.cancelled(), "the work went on after its cancel"
    count = len(rounds)
    await asyncio.sleep(0.05)
    assert len(rounds) == count, "the inner work still runs"


async def test_cancellable_hands_a_late_result_over() -> None:
    arrived = asyncio.Event()
    handed: list[str] = []

    async def connects() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            arrived.set()
        return "a connection"  # it came in all the same

    async def late(value: str) -> None:
        handed.append(value)

    outer = asyncio.ensure_future(cancellable(connects(), late=late))
    await asyncio.sleep(0)
    outer.cancel()
    await asyncio.wait([outer], timeout=2)
    assert outer.cancelled() and arrived.is_set() and handed == ["a connection"]


async def test_raise_if_cancelling_ends_a_loop_whose_step_swallowed_the_cancel() -> None:
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass  # swallowed, without uncancel(): the task still knows
            rounds += 1
            raise_if_cancelling()

    task = asyncio.ensure_future(loop())
    await wait_for(lambda: rounds >= 2, 5, "two rounds of the loop")
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done and task.cancelled()


async def test_every_goes_on_after_a_failed_round_and_ends_on_a_swallowed_cancel() -> None:
    from band._runtime.cancel import every

    rounds: list[int] = []
    failures: list[Exception] = []
    started = asyncio.Event()

    async def step() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            raise OSError("one bad round")
        if len(rounds) >= 4:  # a step that swallows its cancel, as wait_for can on 3.11
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass

    loop = asyncio.ensure_future(every(0.001, step, failures.append, started=started))
    await asyncio.wait_for(started.wait(), 2)
    await wait_for(lambda: len(rounds) >= 4, 5, "the fourth round", step=0.005)
    loop.cancel()
    done, _ = await asyncio.wait([loop], timeout=2)
    assert loop in done and loop.cancelled(), "the loop went on after its cancel"
    assert [str(f) for f in failures] == ["one bad round"]


async def test_retry_returns_once_the_step_works_and_only_retries_what_it_is_told() -> None:
    from band._runtime.cancel import retry

    tries: list[int] = []
    told: list[Exception] = []

    async def connect() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionRefusedError("not yet")
        return "connected"

    assert await retry(connect, 0.001, told.append, errors=(OSError,)) == "connected"
    assert len(tries) == 3 and len(told) == 2

    async def broken() -> str:
        raise ValueError("a bug, not a retry")

    try:
        await retry(broken, 0.001, told.append, errors=(OSError,))
    except ValueError:
        pass
    else:
        raise AssertionError("an error outside `errors` must propagate")
