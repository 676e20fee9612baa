"""The Redis round trip (gate/redis_batch.py RedisBatcher) over a connection double (tests/support/fakes.py).

The real thing is tested against Redis in tests/integration and tests/chaos; here, what each
failure does to the commands of a round trip and to the breaker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from gate.breaker import Breaker
from gate.errors import RedisUnavailable
from gate.redis_batch import RedisBatcher
from tests.support.fakes import FakeRedisServer, fake_redis

OOM = "OOM command not allowed when used memory > 'maxmemory'."


def echo(args: list[bytes]) -> Any:
    """GET k → b"k!"; GET full → an OOM error reply; GET gone → NOSCRIPT."""
    if args[-1] == b"full":
        raise ResponseError(OOM)
    if args[-1] == b"gone":
        raise NoScriptError("No matching script. Please use EVAL.")
    return args[-1] + b"!"


@asynccontextmanager
async def batcher(
    answer: Callable[[list[bytes]], Any] = echo, **options: Any
) -> AsyncIterator[tuple[RedisBatcher, FakeRedisServer, Breaker]]:
    server = FakeRedisServer(answer)
    client = fake_redis(server)
    breaker = Breaker(failures_to_open=3, cooldown_s=60)
    b = RedisBatcher(client, breaker, **{"timeout_s": 1.0, **options})
    try:
        yield b, server, breaker
    finally:
        server.hold.set()
        await b.close()
        await client.aclose()


async def test_the_commands_of_one_tick_share_one_round_trip() -> None:
    async with batcher() as (b, server, breaker):
        got = await asyncio.gather(b.call("GET", "a"), b.call("GET", "b"), b.call("GET", "c"))
        assert list(got) == [b"a!", b"b!", b"c!"]
        assert [len(trip) for trip in server.round_trips] == [3]
        assert await b.call("GET", "d") == b"d!"  # the next tick: a round trip of its own
        assert [len(trip) for trip in server.round_trips] == [3, 1]
        assert breaker.failures == 0


async def test_a_tick_larger_than_max_batch_is_split_across_round_trips() -> None:
    async with batcher(max_batch=2) as (b, server, _):
        await asyncio.gather(*(b.call("GET", str(i)) for i in range(5)))
        assert [len(trip) for trip in server.round_trips] == [2, 2, 1]


async def test_a_failed_round_trip_fails_all_its_commands_and_counts_once_for_the_breaker() -> None:
    async with batcher() as (b, server, breaker):
        server.broken = True
        results = await asyncio.gather(b.call("GET", "a"), b.call("GET", "b"), return_exceptions=True)
        assert [type(r) for r in results] == [RedisUnavailable, RedisUnavailable]
        assert all(isinstance(r.__cause__, RedisConnectionError) for r in results)
        assert breaker.failures == 1
        assert server.disconnects == 1  # replies may be half read: the connection is dropped
        assert await b.call("GET", "c") == b"c!"  # never retried; the next call reconnects
        assert breaker.failures == 0


async def test_a_round_trip_past_its_timeout_fails_its_commands() -> None:
    async with batcher(timeout_s=0.05) as (b, server, breaker):
        server.hold.clear()  # Redis stops answering
        with pytest.raises(RedisUnavailable) as failed:
            await b.call("GET", "a")
        assert isinstance(failed.value.__cause__, TimeoutError)
        assert breaker.failures == 1
        assert server.disconnects == 1


async def test_an_error_reply_is_redis_unavailable_and_a_breaker_failure_its_neighbours_are_answered() -> None:
    async with batcher() as (b, _, breaker):
        replies: list[Any] = list(
            await asyncio.gather(b.call("GET", "full"), b.call("GET", "a"), return_exceptions=True)
        )
        full, fine = replies
        assert isinstance(full, RedisUnavailable)
        assert isinstance(full.__cause__, ResponseError)
        assert str(full.__cause__) == OOM  # kept for the log, never put in an answer
        assert OOM not in str(full)
        assert fine == b"a!"
        assert breaker.failures == 1


async def test_error_replies_open_the_breaker_then_calls_fail_without_a_round_trip() -> None:
    async with batcher() as (b, server, breaker):
        for _ in range(3):
            with pytest.raises(RedisUnavailable):
                await b.call("GET", "full")
        assert breaker.is_open
        trips = len(server.round_trips)
        with pytest.raises(RedisUnavailable):
            b.call("GET", "a")  # raised by call itself: fail fast
        assert len(server.round_trips) == trips


async def test_noscript_is_handed_back_as_it_is_and_is_no_breaker_failure() -> None:
    async with batcher() as (b, _, breaker):
        with pytest.raises(NoScriptError):
            await b.call("GET", "gone")
        assert breaker.failures == 0
