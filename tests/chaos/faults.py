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
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ops.stack.ports import free_port
from tests.support.poll import until
from tests.support.stackctl import StackHandle


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


@asynccontextmanager
async def redis_full(stack: StackHandle) -> AsyncIterator[None]:
    """The stack's Redis at `maxmemory` (noeviction) inside the block: set just above what it uses, so
    the next few hundred admissions fill it; no limit again after."""
    client = aioredis.Redis.from_url(stack.redis_url, decode_responses=True, socket_timeout=5)
    try:
        await client.config_set("maxmemory", int((await client.info("memory"))["used_memory"]) + 16 * 1024)
        yield
    finally:
        await client.config_set("maxmemory", 0)
        await client.aclose()


async def wipe_redis(stack: StackHandle) -> None:
    """Redis loses everything: stop it, delete its append-only files and snapshot, start it empty."""
    try:
        await stack_cmd(stack, "stop", "redis")
        home = stack.state_dir / "redis"
        shutil.rmtree(home / "appendonly")
        (home / "dump.rdb").unlink(missing_ok=True)
    finally:
        await stack_cmd(stack, "start", "redis")


@dataclass(frozen=True)
class ScratchRedis:
    """A redis-server of one test's own (Debian's binary, like the stack's), for faults the stack's must not take."""

    port: int
    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def log_tail(self) -> str:
        return _log_path(self.home).read_text()[-500:]

    def client(self) -> aioredis.Redis:
        # Bounded connect and read: a server that accepts and stays silent must fail the wait below, not stall it.
        return aioredis.Redis(port=self.port, decode_responses=True, socket_timeout=2, socket_connect_timeout=2)


@asynccontextmanager
async def scratch_redis(home: Path, *options: str) -> AsyncIterator[ScratchRedis]:
    """A redis-server in `home` on a free port (extra `options` as `--name value` arguments); killed after."""
    server = await asyncio.to_thread(_spawn_redis, home, options)
    try:
        client = server.client()

        async def answers() -> bool:
            try:
                return bool(await client.ping())
            except RedisError:
                if server.proc.poll() is not None:
                    raise AssertionError(f"scratch redis-server on {server.port} exited: {server.log_tail()}") from None
                return False

        try:
            await until(answers, timeout_s=15, what=f"scratch redis-server on {server.port} answering PING",
                        state=server.log_tail)  # fmt: skip
        finally:
            await client.aclose()
        yield server
    finally:
        server.proc.kill()
        server.proc.wait(timeout=10)


def _log_path(home: Path) -> Path:
    return home.parent / f"{home.name}.log"


def _spawn_redis(home: Path, options: tuple[str, ...]) -> ScratchRedis:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(home), "--save", ""]
    args += ["--enable-protected-configs", "yes", *options]
    if "--cluster-enabled" in options and "--cluster-port" not in options:
        # The bus port defaults to port + 10000, which does not exist above 55535 (the kernel's free ports reach 60999).
        args += ["--cluster-port", str(free_port(exclude={port}))]
    with _log_path(home).open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    return ScratchRedis(port, home, proc)


@asynccontextmanager
async def disk_refused(server: ScratchRedis) -> AsyncIterator[None]:
    """MISCONF inside the block: its snapshot cannot be written, so Redis refuses every write.

    Redis moves to a folder that is then removed (as a lost or full disk would make the write
    fail) and a BGSAVE fails; with `save` points set, `stop-writes-on-bgsave-error` refuses writes
    until a snapshot succeeds. On the way out it moves back and a BGSAVE succeeds. Removing works
    where chmod does not (tests may run as root); `dir` is settable because scratch servers enable
    protected configs.
    """
    client = server.client()
    doomed = server.home / "doomed"
    try:
        doomed.mkdir()
        await client.config_set("save", "3600 1")
        await client.config_set("dir", str(doomed))
        doomed.rmdir()
        await client.bgsave()
        await _bgsave_status(client, "err")
        yield
    finally:
        await client.config_set("dir", str(server.home))
        await client.bgsave()
        await _bgsave_status(client, "ok")
        await client.aclose()


async def _bgsave_status(client: aioredis.Redis, status: str) -> None:
    for _ in range(200):
        persistence = await client.info("persistence")
        if not persistence["rdb_bgsave_in_progress"] and persistence["rdb_last_bgsave_status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"BGSAVE did not end with status {status!r}")
