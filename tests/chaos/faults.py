"""Fault injection on the chaos stack, each undone on the way out whatever happens.

Faults go through the project's own launcher (`flashgate stack stop|start|kill`) or signals to the
pids `flashgate stack status` reports. The launcher is blocking, so it runs in a thread: the load
driver keeps sending orders in the event loop while a service goes down or comes back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.stackctl import StackHandle


async def stack_cmd(stack: StackHandle, *args: str) -> None:
    """`flashgate stack <args>` on the chaos stack, off the event loop; fails on a non-zero exit."""
    await asyncio.to_thread(stack.run, *args)


@asynccontextmanager
async def service_down(stack: StackHandle, service: str, *, how: str = "kill") -> AsyncIterator[None]:
    """`service` is down (`kill`: SIGKILL as a crash, `stop`: graceful) inside the block; started after."""
    assert how in ("kill", "stop")
    try:
        await stack_cmd(stack, how, service)
        yield
    finally:
        await stack_cmd(stack, "start", service)


def service_pid(stack: StackHandle, service: str) -> int:
    pid = stack.pids()[service]
    assert pid is not None, f"{service} is not running"
    return pid


@asynccontextmanager
async def frozen(stack: StackHandle, service: str) -> AsyncIterator[int]:
    """`service` is SIGSTOPped inside the block (alive, connections open, answering nothing); SIGCONT after."""
    pid = await asyncio.to_thread(service_pid, stack, service)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


async def wipe_redis(stack: StackHandle) -> None:
    """Redis loses everything: stop it, delete its append-only files and snapshot, start it empty."""
    try:
        await stack_cmd(stack, "stop", "redis")
        home = stack.state_dir / "redis"
        shutil.rmtree(home / "appendonly")
        (home / "dump.rdb").unlink(missing_ok=True)
    finally:
        await stack_cmd(stack, "start", "redis")
