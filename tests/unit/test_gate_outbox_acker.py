"""Outbox acks (gate/outbox.py OutboxAcker) over the RoundTrips double (tests/support/fakes.py)."""

from __future__ import annotations

import asyncio

from flashgate import names
from gate.errors import RedisUnavailable
from gate.outbox import OutboxAcker, OutboxClient
from gate.scripts import Scripts
from tests.support.fakes import Command, FakeRoundTrips, plain_redis, script_args, script_of


def acker(redis: FakeRoundTrips) -> OutboxAcker:
    return OutboxAcker(OutboxClient(redis, Scripts()))


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
