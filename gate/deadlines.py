"""One timer for the deadlines of many awaits: `await deadlines.within(awaitable)`.

`asyncio.timeout` per request schedules a timer and cancels it (~5.5 µs a request on this box,
measured; docs/benchmarks.md), and the order route waits for every request's body under one.
Here the waiting tasks sit in a dict and one timer, armed only while any waits, checks them every
`tick_s`: a deadline passes no sooner than `timeout_s` after the await began, and at most
`tick_s` later. The task whose deadline passed is cancelled, as `asyncio.timeout` does, and the
cancellation comes out of `within` as TimeoutError; a cancellation from anyone else stays one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlines:
    """Awaits that each get `timeout_s`, checked by one timer every `tick_s` (default: an eighth of it)."""

    def __init__(
        self, timeout_s: float, *, tick_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        self._timeout_s = timeout_s
        self._tick_s = timeout_s / 8 if tick_s is None else tick_s
        self._clock = clock
        self._waiting: dict[asyncio.Task[Any], float] = {}  # task → its deadline
        self._expired: dict[asyncio.Task[Any], int] = {}  # cancelled for its deadline → cancel requests before it
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # a timer of a loop now gone never fires

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def within(self, awaitable: Awaitable[T]) -> T:
        """The awaitable's result, or TimeoutError once the deadline passed (the awaitable is cancelled)."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.within must be awaited in a task")
        self._waiting[task] = self._clock() + self._timeout_s
        loop = task.get_loop()
        if self._timer is None or self._timer_loop is not loop:
            self._arm(loop)
        try:
            return await awaitable
        except asyncio.CancelledError:
            before = self._expired.pop(task, None)
            # Ours, and nobody else asked to cancel meanwhile: a timeout (asyncio.timeout's rule).
            if before is not None and task.uncancel() <= before:
                raise TimeoutError from None
            raise
        finally:
            self._waiting.pop(task, None)
            self._expired.pop(task, None)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_loop = loop.call_later(self._tick_s, self._check), loop

    def _check(self) -> None:
        self._timer = None
        now = self._clock()
        passed = [task for task, deadline in self._waiting.items() if deadline <= now]
        for task in passed:
            del self._waiting[task]
            self._expired[task] = task.cancelling()
            task.cancel()
        if self._waiting:
            self._arm(asyncio.get_running_loop())
