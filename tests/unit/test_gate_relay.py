"""gate/outbox.py's Relay against fakes: one SKU's Redis down does not hold up the others' outboxes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from flashgate.outbox import OutboxEntry
from gate.breaker import Breaker
from gate.errors import RedisUnavailable
from gate.handoff import Handoff
from gate.metrics import GateMetrics
from gate.outbox import OutboxAcker, OutboxClient, Relay
from gate.redis_batch import RedisBatcher
from gate.scripts import Scripts


class FakeOutbox:
    """Outboxes by SKU; a SKU in `down` answers as a dead Redis Cluster shard would."""

    def __init__(self, outboxes: dict[str, list[OutboxEntry]], down: set[str]) -> None:
        self.outboxes, self.down = outboxes, down

    async def sale_skus(self) -> set[str]:
        return set(self.outboxes)

    async def lengths(self, skus: list[str]) -> list[int | RedisUnavailable]:
        return [RedisUnavailable() if sku in self.down else len(self.outboxes[sku]) for sku in skus]

    async def claim(self, sku: str, **_: Any) -> tuple[str, list[OutboxEntry]]:
        if sku in self.down:
            raise RedisUnavailable()
        return "0-0", self.outboxes[sku]


class FakeHandoff:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.traces: list[str] = []

    def in_flight(self, order_id: str) -> bool:
        return False

    def send(self, event: Any, on_delivery: Callable[..., None], *, trace: str = "") -> None:
        self.sent.append(event)
        self.traces.append(trace)


def entry(n: int) -> OutboxEntry:
    return OutboxEntry(f"{n}-0", f"0190a0e0-0000-7000-8000-00000000000{n}", f"u{n}", 1, f"k{n}", 1_700_000_000_000_000)


async def test_a_shard_down_fails_the_tick_after_the_other_skus_are_relayed() -> None:
    outbox = FakeOutbox({"a": [entry(1)], "b": [entry(2)], "c": [entry(3)]}, down={"b"})
    handoff, metrics = FakeHandoff(), GateMetrics(None)
    relay = Relay(
        cast(OutboxClient, outbox), cast(Handoff, handoff), cast(OutboxAcker, None),
        metrics=metrics, stale_ms=1000, batch=10, discover_s=1.0,
    )  # fmt: skip
    with pytest.raises(RedisUnavailable):
        await relay.tick()
    assert sorted(e.sku for e in handoff.sent) == ["a", "c"]
    assert (metrics.relay_ticks["failed"], metrics.events["relay_republished"]) == (1, 2)
    outbox.down.clear()
    assert await relay.tick() == 3  # nothing acked by the fakes: all three again, the tick ok
    assert metrics.relay_ticks["ok"] == 1


async def test_lengths_put_each_unreachable_sku_s_error_in_its_place() -> None:
    """A Redis that does not answer (then a breaker open without a round trip) is RedisUnavailable per SKU."""
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    batcher = RedisBatcher(client, Breaker(failures_to_open=1, cooldown_s=60), timeout_s=2)
    outbox = OutboxClient(batcher, Scripts())
    try:
        first = await outbox.lengths(["a", "b"])  # the round trip fails: both in place
        assert [type(x) for x in first] == [RedisUnavailable, RedisUnavailable]
        assert batcher.breaker_open
        again = await outbox.lengths(["a"])  # the breaker refuses at once, no round trip
        assert [type(x) for x in again] == [RedisUnavailable]
    finally:
        await batcher.close()
        await client.aclose()


async def test_a_republished_order_keeps_its_trace_context() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = OutboxEntry("9-0", "0190a0e0-0000-7000-8000-000000000009", "u9", 1, "k9", 1, trace=traceparent)
    outbox = FakeOutbox({"a": [entry(1), traced]}, down=set())
    handoff = FakeHandoff()
    relay = Relay(
        cast(OutboxClient, outbox), cast(Handoff, handoff), cast(OutboxAcker, None),
        metrics=GateMetrics(None), stale_ms=1000, batch=10, discover_s=1.0,
    )  # fmt: skip
    assert await relay.tick() == 2
    assert handoff.traces == ["", traceparent]
