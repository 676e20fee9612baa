"""Poll with a deadline, never a blind sleep: `eventually` blocks its thread, `until` awaits."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


def eventually(
    check: Callable[[], bool], *, timeout_s: float = 30.0, interval_s: float = 0.05, what: str = "condition"
) -> None:
    """Call `check` every `interval_s` until it is true; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout_s:g} s")
        time.sleep(interval_s)


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.05,
    what: str = "condition",
    state: Callable[[], str] | None = None,
    in_thread: bool = False,
) -> float:
    """Poll `check` from the event loop until it is true; the seconds that took.

    `check` is a cheap synchronous call (run in the loop, so a load running beside it is held up
    only that long), an async one (awaited), or, with `in_thread`, a blocking call run in a worker
    thread so the loop keeps running. At the deadline: AssertionError naming `what`, with
    `state()` (what was seen instead) when given.
    """
    began = time.monotonic()
    while not await _ask(check, in_thread=in_thread):
        if time.monotonic() - began > timeout_s:
            seen = f"; {state()}" if state is not None else ""
            raise AssertionError(f"{what}: not met within {timeout_s:g} s{seen}")
        await asyncio.sleep(interval_s)
    return time.monotonic() - began


async def _ask(check: Callable[[], bool | Awaitable[bool]], *, in_thread: bool) -> bool:
    answer = await asyncio.to_thread(check) if in_thread else check()
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)
