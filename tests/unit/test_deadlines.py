"""gate/deadlines.py: one timer for the body deadlines of every request in flight."""

from __future__ import annotations

import asyncio
import time

import pytest

from gate.deadlines import Deadlines


async def _reading(deadlines: Deadlines, body: asyncio.Future[bytes] | None = None) -> asyncio.Task[bytes]:
    """A task awaiting `body` (never done, by default) within the deadlines, once it has begun."""
    started = asyncio.Event()
    awaited = body if body is not None else asyncio.get_running_loop().create_future()

    async def reader() -> bytes:
        started.set()
        return await deadlines.within(awaited)

    task = asyncio.create_task(reader())
    await started.wait()
    return task


async def test_a_result_in_time_comes_back_and_leaves_no_timer() -> None:
    deadlines = Deadlines(1.0)
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[bytes] = loop.create_future()
    loop.call_soon(ready.set_result, b"body")
    assert await deadlines.within(ready) == b"body"
    assert deadlines.waiting == 0
    await asyncio.sleep(1 / 8 + 0.05)  # the one check ran, found nobody waiting and did not re-arm
    assert deadlines._timer is None


async def test_an_await_past_its_deadline_raises_timeout_error_no_sooner_and_at_most_a_tick_later() -> None:
    deadlines = Deadlines(0.2, tick_s=0.05)
    never: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        await deadlines.within(never)
    took = time.monotonic() - began
    assert 0.2 <= took < 0.2 + 0.05 + 0.1, took
    assert never.cancelled()  # the awaitable itself was cancelled, as asyncio.timeout does
    assert deadlines.waiting == 0


async def test_the_task_goes_on_awaiting_after_its_timeout() -> None:
    """The cancellation that made the timeout is taken back: the next await is not cancelled."""
    deadlines = Deadlines(0.05, tick_s=0.01)

    async def answer() -> str:
        try:
            await deadlines.within(asyncio.get_running_loop().create_future())
        except TimeoutError:
            await asyncio.sleep(0.01)
            return "408"
        return "never"

    task = asyncio.create_task(answer())
    assert await task == "408"
    assert task.cancelling() == 0


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(10.0)
    task = await _reading(deadlines)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.waiting == 0


async def test_a_deadline_and_a_cancellation_together_stay_a_cancellation() -> None:
    """Like asyncio.timeout: a shutdown that cancels the task while its deadline passes is not hidden."""
    now = [0.0]
    deadlines = Deadlines(1.0, tick_s=60, clock=lambda: now[0])
    task = await _reading(deadlines)
    now[0] = 1.0
    deadlines._check()  # the deadline passes…
    task.cancel()  # …and someone else cancels in the same tick
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_deadline_that_passes_as_the_body_arrives_is_a_timeout() -> None:
    """The awaitable finished, but its task had not run yet when the check found the deadline passed."""
    now = [0.0]
    deadlines = Deadlines(1.0, tick_s=60, clock=lambda: now[0])
    body: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    task = await _reading(deadlines, body)
    body.set_result(b"late")
    now[0] = 1.0
    deadlines._check()
    with pytest.raises(TimeoutError):
        await task


async def test_only_the_awaits_past_their_deadline_time_out() -> None:
    now = [0.0]
    deadlines = Deadlines(1.0, tick_s=60, clock=lambda: now[0])
    late: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    first = await _reading(deadlines)
    now[0] = 0.5
    second = await _reading(deadlines, late)
    now[0] = 1.0
    deadlines._check()
    late.set_result(b"in time")
    with pytest.raises(TimeoutError):
        await first
    assert await second == b"in time"


def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Deadlines(0)


async def test_within_outside_a_task_is_refused() -> None:
    """Driven from a plain loop callback, where there is no current task to cancel."""
    deadlines = Deadlines(1.0)
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[BaseException] = loop.create_future()

    def step() -> None:
        coro = deadlines.within(loop.create_future())
        try:
            coro.send(None)
        except RuntimeError as e:
            outcome.set_result(e)
        finally:
            coro.close()

    loop.call_soon(step)
    assert "in a task" in str(await outcome)


def test_a_second_event_loop_gets_a_timer_of_its_own() -> None:
    """A timer armed on a loop that has since closed never fires: the next loop's awaits arm their own."""
    deadlines = Deadlines(0.05, tick_s=0.01)

    async def read_forever() -> None:
        await deadlines.within(asyncio.get_running_loop().create_future())

    async def interrupted() -> None:
        task = asyncio.create_task(read_forever())
        await asyncio.sleep(0)  # the timer is armed on this loop…
        task.cancel()  # …and the loop ends before it fires

    async def timed_out_by_the_deadline() -> bool:
        try:
            async with asyncio.timeout(2):  # the guard, should the deadline never be checked
                await read_forever()
        except TimeoutError:
            return time.monotonic() - began < 1  # the deadline's 0.05 s, not the guard's 2
        return False

    asyncio.run(interrupted())
    began = time.monotonic()
    assert asyncio.run(timed_out_by_the_deadline())
