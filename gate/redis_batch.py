"""Coalesce the Redis commands of one event-loop tick into one pipeline round trip, behind a breaker.

Concurrent requests each ask for one command; commands queued while at most
`max_pipelines` pipelines are in flight go together in the next one. A pipeline that fails
or passes `timeout_s` fails all its commands with RedisUnavailable and is never retried:
a retried admission could be admitted twice (the client retries with its Idempotency-Key).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gate.breaker import Breaker
from gate.errors import RedisUnavailable

Command = tuple[Any, ...]


class RedisBatcher:
    """`await batcher.call("EVALSHA", ...)` → the command's reply, or its error, or RedisUnavailable."""

    def __init__(
        self,
        client: aioredis.Redis,
        breaker: Breaker,
        *,
        timeout_s: float,
        max_pipelines: int = 4,
        max_batch: int = 512,
        clock: Callable[[], float] = time.monotonic,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self._client = client
        self._breaker = breaker
        self._timeout_s = timeout_s
        self._max_pipelines = max_pipelines
        self._max_batch = max_batch
        self._clock = clock
        self._observe = observe  # (commands, seconds) of each pipeline round trip, for the metrics
        self._queue: list[tuple[Command, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def breaker(self) -> Breaker:
        return self._breaker

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client, for the few calls that do not fit a pipeline (SCAN, PING)."""
        return self._client

    def call(self, *command: Any) -> asyncio.Future[Any]:
        """Queue one command for this tick's pipeline; fails at once while the breaker is open."""
        if not self._breaker.allow(self._clock()):
            raise RedisUnavailable("Redis circuit open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def fire(self, *command: Any) -> None:
        """Queue a command nobody waits for (best effort); its failure is only counted by the breaker."""
        with contextlib.suppress(RedisUnavailable):
            self.call(*command).add_done_callback(_swallow)

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue and self._running < self._max_pipelines:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running -= 1
        if self._queue and not self._scheduled:
            self._flush()

    async def _run(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        began = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._client.pipeline(transaction=False) as pipe:
                    for command, _ in batch:
                        pipe.execute_command(*command)
                    results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as e:
            self._observed(len(batch), began)
            self._breaker.failure(self._clock())
            for _, fut in batch:
                if not fut.done():
                    err = RedisUnavailable(f"Redis: {type(e).__name__}: {e}")
                    err.__cause__ = e
                    fut.set_exception(err)
            return
        self._observed(len(batch), began)
        self._breaker.success()
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    def _observed(self, commands: int, began: float) -> None:
        if self._observe is not None:
            self._observe(commands, time.perf_counter() - began)

    async def close(self) -> None:
        """Wait for pipelines in flight (each is bounded by the timeout)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _swallow(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
