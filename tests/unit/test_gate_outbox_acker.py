"""Outbox acks (gate/outbox.py OutboxAcker) over the RoundTrips double (tests/support/fakes.py)."""

from __future__ import annotations

import asyncio

from flashgate import names
from gate.errors import RedisUnavailable
from gate.outbox import MAX_ACKS_PER_CALL, OutboxAcker, OutboxClient
from gate.scripts import Scripts
from tests.support.fakes import Command, FakeRoundTrips, plain_redis, script_args, script_of


def acker(redis: FakeRoundTrips, *, ride_s: float = 0.002) -> OutboxAcker:
    return OutboxAcker(OutboxClient(redis, Scripts()), ride_s=ride_s)


async def test_acks_of_one_tick_are_one_call_per_sku_in_one_round_trip() -> None:
    redis = FakeRoundTrips()
    a = acker(redis)
    done = [a.ack("a", "1-0"), a.ack("b", "1-0"), a.ack("a", "2-0")]
    assert done[0] is done[2]  # one future per SKU and tick
    assert list(await asyncio.gather(*done)) == [True, True, True]
    calls = redis.scripts(names.OUTBOX_ACK_SCRIPT)
    assert len(redis.ticks) == 1
    assert sorted((script_args(c)[0][0], script_args(c)[1]) for c in calls) == [
        (names.outbox_key("a"), ["1-0", "2-0"]),
        (names.outbox_key("b"), ["1-0"]),
    ]
    assert await a.ack("a", "3-0")  # the next tick: a call of its own
    assert len(redis.ticks) == 2


async def test_acked_counts_the_entries_of_every_sku_acked_in_one_tick() -> None:
    a = acker(FakeRoundTrips())
    await asyncio.gather(a.ack("a", "1-0"), a.ack("b", "1-0"), a.ack("a", "2-0"))
    assert a.acked == 3


async def test_a_failed_ack_resolves_false_for_its_sku_only() -> None:
    def b_down(command: Command) -> object:
        if script_of(command) == names.OUTBOX_ACK_SCRIPT and script_args(command)[0][0] == names.outbox_key("b"):
            raise RedisUnavailable()
        return plain_redis(command)

    a = acker(FakeRoundTrips(b_down))
    assert list(await asyncio.gather(a.ack("a", "1-0"), a.ack("b", "1-0"))) == [True, False]
    await a.drain()


async def test_acks_nobody_carries_go_alone_after_the_ride_and_at_shutdown() -> None:
    redis = FakeRoundTrips()
    a = acker(redis, ride_s=0.05)
    done = a.ack("a", "1-0")
    await asyncio.sleep(0.01)
    assert redis.commands == []  # still waiting for an admission of "a" to ride
    assert await asyncio.wait_for(done, 5)
    a = acker(redis, ride_s=60)
    done = a.ack("a", "2-0")
    await a.drain()
    assert done.result() is True
    assert [script_args(c)[1] for c in redis.scripts(names.OUTBOX_ACK_SCRIPT)] == [["1-0"], ["2-0"]]


async def test_a_taken_ride_leaves_nothing_to_send_alone() -> None:
    redis = FakeRoundTrips()
    a = acker(redis, ride_s=0.01)
    done = a.ack("a", "1-0")
    pending = a.take("a")
    assert pending is not None
    assert (pending.ids, pending.done) == (["1-0"], done)
    assert a.take("a") is None
    a.settle(pending, deleted=1)
    await asyncio.sleep(0.03)
    assert (done.result(), a.acked, redis.commands) == (True, 1, [])


async def test_a_full_ride_goes_at_once() -> None:
    redis = FakeRoundTrips()
    a = acker(redis, ride_s=60)
    done = [a.ack("a", f"{i}-0") for i in range(MAX_ACKS_PER_CALL + 1)]
    assert await asyncio.wait_for(done[0], 5)
    [call] = redis.scripts(names.OUTBOX_ACK_SCRIPT)
    assert len(script_args(call)[1]) == MAX_ACKS_PER_CALL
    assert not done[-1].done()  # the next one waits for its own ride
    await a.drain()
