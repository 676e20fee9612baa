"""Coalesce the Redis commands of one event-loop tick into one round trip, behind a breaker.

Concurrent callers each ask for one command; commands queued while at most `max_pipelines`
round trips are in flight go together in the next one. A round trip is one packed write and
one read per reply on a connection of its own (redis-py's connection and parser, without the
Pipeline objects: their per-call bookkeeping cost more than the commands once admission is
batched). A round trip that fails or passes `timeout_s` fails all its commands with
RedisUnavailable, drops its connection (replies may be half read) and is never retried: a
retried admission could be admitted twice (the client retries with its Idempotency-Key).

An error reply fails its command with RedisUnavailable too: OOM, MISCONF, READONLY, BUSY,
TRYAGAIN, CLUSTERDOWN, MOVED… all mean "this Redis cannot serve that now", and the scripts'
`#!lua` shebang makes Redis refuse a write script before it runs, so nothing was consumed. It
counts as a failure for the breaker, except a redirection (MOVED, ASK, TRYAGAIN: the node is
well, the slot is served elsewhere; gate/redis_cluster.py reads the slot map again). NOSCRIPT
alone is handed back as it is (gate/scripts.py loads the script and calls again). What Redis
said is logged, at most once per `LOG_EVERY_S` per kind, never put in an answer: problem details
do not carry hosts, ports or exception text.

With `wait_ms` (a cluster's primaries, which have replicas), a round trip that runs a script ends
with `WAIT 1 <wait_ms>`: its replies are read only once a replica has every write of the connection,
so an admission answered 202 is on two Redis nodes and survives a failover. A replica that does not
acknowledge in time leaves the answers as they are (the stock is taken; a 503 would hide an
admission), relying on the Kafka ack and the reconciler, is logged, counted (`unacked`: the
metric flashgate_gate_redis_wait_unacked_total) and pauses WAIT for `WAIT_PAUSE_S` (a primary
whose replica is gone; docs/architecture.md, Redis Cluster).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from gate.breaker import Breaker
from gate.errors import RedisUnavailable
from gate.throttled_log import ThrottledLog

Command = tuple[Any, ...]
log = logging.getLogger(__name__)
LOG_EVERY_S = 10.0
# After a WAIT no replica answered (a primary whose replica is gone), the next ones are skipped this
# long: otherwise every admission on that shard would pay the whole WAIT timeout until a replica is back.
WAIT_PAUSE_S = 5.0


class RoundTrips(Protocol):
    """The seam every Redis caller of the gate uses: one Redis (RedisBatcher) or a cluster (ClusterBatcher)."""

    def call(self, *command: Any, route: str | None = None) -> asyncio.Future[Any]: ...

    @property
    def breaker_open(self) -> bool: ...

    async def close(self) -> None: ...


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
        wait_ms: int = 0,
        unacked: Callable[[], None] | None = None,
    ) -> None:
        self._breaker = breaker
        self._wait_ms = wait_ms
        self._unacked = unacked  # called once per WAIT that no replica acknowledged in time
        self._wait_paused_until = -float("inf")
        self._timeout_s = timeout_s
        self._max_pipelines = max_pipelines
        self._max_batch = max_batch
        self._clock = clock
        self._observe = observe  # (commands, seconds) of each pipeline round trip, for the metrics
        self._queue: list[tuple[Command, asyncio.Future[Any]]] = []
        # Connections for round trips, without redis-py's socket timeout (a task per call):
        # the whole round trip has one deadline here instead.
        base = client.connection_pool
        self._pool = aioredis.ConnectionPool(
            connection_class=base.connection_class, **{**base.connection_kwargs, "socket_timeout": None}
        )
        self._idle: list[Connection] = []
        self._scheduled = False
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = ThrottledLog(log, LOG_EVERY_S, clock)

    @property
    def breaker(self) -> Breaker:
        return self._breaker

    @property
    def breaker_open(self) -> bool:
        return self._breaker.is_open

    def call(self, *command: Any, route: str | None = None) -> asyncio.Future[Any]:
        """Queue one command for this tick's pipeline; fails at once while the breaker is open.

        `route` (which key's node to ask) matters on a cluster only (gate/redis_cluster.py).
        """
        if not self._breaker.allow(self._clock()):
            raise RedisUnavailable()  # the breaker is open: fail fast
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

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
        conn = self._idle.pop() if self._idle else self._new_connection()
        try:
            commands = [command for command, _ in batch]
            wait = self._wait_ms > 0 and self._clock() >= self._wait_paused_until
            wait = wait and any(command[0] == "EVALSHA" for command in commands)
            async with asyncio.timeout(self._timeout_s):
                results = await _round_trip(conn, [*commands, ("WAIT", 1, self._wait_ms)] if wait else commands)
            self._idle.append(conn)
        except BaseException as e:
            # Every caller gets its answer first, whatever happens to the connection below.
            self._failed(batch, began, e)
            try:
                await conn.disconnect(nowait=True)  # replies may be half read: never reuse it as it is
            finally:
                self._idle.append(conn)  # it reconnects on its next use
            if not isinstance(e, (RedisError, OSError, TimeoutError)):
                raise
            return
        self._observed(len(batch), began)
        if wait:
            self._waited(results.pop())
        refused = False
        for (_, fut), result in zip(batch, results, strict=True):
            if isinstance(result, ResponseError) and not isinstance(result, NoScriptError):
                refused = refused or not isinstance(result, _REDIRECTIONS)
                kind = _reply_kind(result)
                self._log.warning(
                    kind, "Redis refused a command: %s", result if str(result).startswith(kind) else f"{kind} {result}"
                )
                result = _unavailable(result)
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)
        if refused:
            self._breaker.failure(self._clock())
        else:
            self._breaker.success()

    def _waited(self, replicas: Any) -> None:
        if isinstance(replicas, Exception):
            self._log.warning("WAIT", "WAIT failed after a script (its answers stand): %s", replicas)
        elif int(replicas) < 1:
            self._wait_paused_until = self._clock() + WAIT_PAUSE_S
            if self._unacked is not None:
                self._unacked()
            self._log.warning(
                "WAIT", "no replica acknowledged within %d ms: admissions are on one node for %.0f s",
                self._wait_ms, WAIT_PAUSE_S,
            )  # fmt: skip

    def _new_connection(self) -> Connection:
        conn: Connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        return conn

    def _failed(self, batch: list[tuple[Command, asyncio.Future[Any]]], began: float, e: BaseException) -> None:
        self._observed(len(batch), began)
        self._breaker.failure(self._clock())
        kind = type(e).__name__
        self._log.warning(kind, "Redis round trip of %d commands failed: %s: %s", len(batch), kind, e)
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(_unavailable(e))

    def _observed(self, commands: int, began: float) -> None:
        if self._observe is not None:
            self._observe(commands, time.perf_counter() - began)

    async def close(self) -> None:
        """Wait for round trips in flight (each is bounded by the timeout), then close the connections."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self._idle:
            await conn.disconnect()
        self._idle.clear()


def _unavailable(cause: BaseException) -> RedisUnavailable:
    """The answer's error: its code and title only; the cause stays in the log and `__cause__`."""
    err = RedisUnavailable()
    err.__cause__ = cause
    return err


# A slot served elsewhere (moved, or moving): this node is well, the gate's slot map is behind. Not a
# breaker failure: a slot moving off a node would otherwise open its breaker, refusing its other slots.
_REDIRECTIONS = (MovedError, AskError, TryAgainError)

# Error replies redis-py parses into their own classes, dropping the reply's first word.
_CLUSTER_REPLIES = (
    (MovedError, "MOVED"),
    (AskError, "ASK"),
    (TryAgainError, "TRYAGAIN"),
    (ClusterDownError, "CLUSTERDOWN"),
)


def _reply_kind(e: ResponseError) -> str:
    """An error reply's first word (OOM, MISCONF, READONLY, MOVED…): what the log throttles by."""
    for cls, word in _CLUSTER_REPLIES:
        if isinstance(e, cls):
            return word
    return str(e.status_code or str(e).split(" ", 1)[0] or "ERR")


async def _round_trip(conn: Connection, commands: list[Command]) -> list[Any]:
    """One packed write, then every reply in order; error replies come back as exceptions in the list."""
    # hiredis packs in C: about 5x cheaper than redis-py's Python packer for a batch's hundreds of arguments.
    await conn.send_packed_command([hiredis.pack_command(command) for command in commands], check_health=False)
    results: list[Any] = []
    for _ in commands:
        try:
            results.append(await conn.read_response())
        except ResponseError as e:
            results.append(e)
    return results
