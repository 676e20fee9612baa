"""The gate's round trips on a Redis Cluster: one RedisBatcher per primary, each command sent by its key's slot.

    call(cmd) ─▶ slot of its key (every key of one call shares the SKU's tag `{sku}`)
              ─▶ the primary serving that slot (SlotMap, from CLUSTER SLOTS)
              ─▶ that node's RedisBatcher: this tick's commands for the node in one round trip,
                 behind the node's own breaker (a dead shard never opens the others' breakers)

Nothing is redirected or retried here: MOVED, ASK, TRYAGAIN, CLUSTERDOWN, READONLY and a node
that does not answer all fail the command with RedisUnavailable (503 + Retry-After, nothing
consumed: an error reply means the script never ran; a lost round trip is the client's to retry
with its Idempotency-Key), and mark the slot map stale. A stale map is read again from any node
that answers (at most every `refresh_min_s`), so once the cluster has failed over the next
calls go to the new primary: the gate recovers by itself. With `wait_ms`, a round trip that ran
a script waits for a replica (`WAIT 1 <wait_ms>`, gate/redis_batch.py) before its answers count;
`unacked("host:port")` is called for each WAIT no replica of that primary acknowledged.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from flashgate.orderindex import key_slot
from flashgate.redis_url import ClusterUrl
from gate.breaker import Breaker
from gate.errors import RedisUnavailable
from gate.redis_batch import RedisBatcher

log = logging.getLogger(__name__)
Address = tuple[str, int]


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True)
class SlotMap:
    """Which primary serves which slots: sorted, non-overlapping (first, last, primary) ranges, plus replicas."""

    ranges: tuple[tuple[int, int, Address], ...]
    replicas: tuple[Address, ...] = ()

    @classmethod
    def parse(cls, reply: Sequence[Any]) -> SlotMap:
        """A CLUSTER SLOTS reply: [first, last, [host, port, id…] of the primary, replicas…] per range."""
        ranges, replicas = [], []
        for entry in reply:
            first, last, primary, *others = entry
            ranges.append((int(first), int(last), (_text(primary[0]), int(primary[1]))))
            replicas += [(_text(r[0]), int(r[1])) for r in others]
        return cls(tuple(sorted(ranges)), tuple(sorted(set(replicas))))

    def node(self, slot: int) -> Address | None:
        """The primary serving `slot`, or None when no node does (a shard down for good, or no map)."""
        i = bisect.bisect_right(self.ranges, (slot, 1 << 30)) - 1
        if i >= 0 and self.ranges[i][0] <= slot <= self.ranges[i][1]:
            return self.ranges[i][2]
        return None

    @property
    def primaries(self) -> list[Address]:
        return list(dict.fromkeys(r[2] for r in self.ranges))


def routing_key(command: Sequence[Any]) -> str | None:
    """The key a command is routed by: EVALSHA/EVAL's first key, else the first argument; None if keyless."""
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return str(command[3]) if int(command[2]) > 0 else None
    if name in ("PING", "SCRIPT", "TIME", "INFO") or len(command) < 2:
        return None
    return str(command[1])


class ClusterBatcher:
    """The RedisBatcher interface (`call`, `breaker_open`, `close`) over every primary of one cluster."""

    def __init__(
        self,
        url: ClusterUrl,
        new_breaker: Callable[[], Breaker],
        *,
        timeout_s: float,
        observe: Callable[[int, float], None] | None = None,
        wait_ms: int = 0,
        unacked: Callable[[str], None] | None = None,
        refresh_min_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._new_breaker = new_breaker
        self._timeout_s = timeout_s
        self._observe = observe
        self._wait_ms = wait_ms
        self._unacked = unacked
        self._refresh_min_s = refresh_min_s
        self._clock = clock
        self._map = SlotMap(())
        self._nodes: dict[Address, tuple[aioredis.Redis, RedisBatcher]] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._refreshed_at = -float("inf")

    @property
    def slot_map(self) -> SlotMap:
        return self._map

    @property
    def breaker_open(self) -> bool:
        """Some primary's breaker is open (that node's slots answer 503 at once)."""
        return any(batcher.breaker.is_open for _, batcher in self._nodes.values())

    async def start(self) -> None:
        """Read the slot map once; a cluster not answering yet only leaves it empty (calls answer 503)."""
        await self._refresh()

    def call(self, *command: Any, route: str | None = None) -> asyncio.Future[Any]:
        """Queue `command` for the primary of its key's slot (`route`: the key, for keyless commands)."""
        key = route if route is not None else routing_key(command)
        address = self._map.node(key_slot(key)) if key is not None else next(iter(self._map.primaries), None)
        if address is None:
            self.stale()
            raise RedisUnavailable()
        try:
            fut = self._batcher(address).call(*command)
        except RedisUnavailable:
            self.stale()
            raise
        fut.add_done_callback(self._after)
        return fut

    async def ping(self) -> bool:
        """True when some primary answers PING (a shard down leaves the others admitting); else ConnectionError."""
        calls = []
        for address in self._map.primaries:
            with contextlib.suppress(RedisUnavailable):
                calls.append(self._batcher(address).call("PING"))
        answers = await asyncio.gather(*calls, return_exceptions=True)
        if not any(not isinstance(a, BaseException) for a in answers):
            self.stale()
            raise RedisConnectionError("no primary of the cluster answered")
        return True

    def _after(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and isinstance(fut.exception(), RedisUnavailable):
            self.stale()

    def stale(self) -> None:
        """Read the slot map again soon: one refresh at a time, started at most every `refresh_min_s`."""
        if self._refreshing is not None:
            return
        delay_s = max(0.0, self._refreshed_at + self._refresh_min_s - self._clock())
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh(delay_s))
        self._refreshing.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        self._refreshing = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("slot map refresh failed: %r", task.exception())

    async def _refresh(self, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        self._refreshed_at = self._clock()
        candidates = [*self._map.primaries, *self._map.replicas, *self._url.seeds]
        for address in dict.fromkeys(candidates):
            client = self._client(address)
            try:
                reply = await asyncio.wait_for(client.cluster("SLOTS"), self._timeout_s)
            except (RedisError, OSError, TimeoutError):
                continue
            finally:
                await client.aclose()
            fresh = SlotMap.parse(reply)
            if not fresh.ranges:  # a node alone or not yet joined knows no slots: ask the next one
                continue
            if fresh.ranges != self._map.ranges:
                log.info("slot map: %s", ", ".join(f"{a}-{b} {h}:{p}" for a, b, (h, p) in fresh.ranges))
            self._map = fresh
            return
        log.warning("slot map: no node of the cluster answered CLUSTER SLOTS with slots")

    def _client(self, address: Address) -> aioredis.Redis:
        # No client-side retry: a retried EVALSHA after a timeout could admit twice.
        return aioredis.Redis(
            host=address[0],
            port=address[1],
            decode_responses=True,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),
            **self._url.client_kwargs(),
        )

    def _batcher(self, address: Address) -> RedisBatcher:
        if address not in self._nodes:
            client = self._client(address)
            unacked = None if self._unacked is None else functools.partial(self._unacked, f"{address[0]}:{address[1]}")
            batcher = RedisBatcher(
                client,
                self._new_breaker(),
                timeout_s=self._timeout_s,
                observe=self._observe,
                wait_ms=self._wait_ms,
                unacked=unacked,
            )
            self._nodes[address] = (client, batcher)
        return self._nodes[address][1]

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refreshing
        for client, batcher in self._nodes.values():
            await batcher.close()
            await client.aclose()
        self._nodes.clear()
