"""gate/outbox.py's Relay against fakes: one SKU's Redis down does not hold up the others' outboxes."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from flashgate.events import OrderAccepted, OrdersAccepted
from flashgate.outbox import OutboxOrder
from gate.breaker import Breaker
from gate.errors import HandoffError, RedisUnavailable
from gate.handoff import OnDelivered
from gate.metrics import GateMetrics
from gate.outbox import OutboxClient, Relay
from gate.redis_batch import RedisBatcher
from gate.scripts import Scripts
from tests.support.fakes import FakeAcks, FakeOutboxes, FakeSink


def order(n: int, stream_id: str = "") -> OutboxOrder:
    sid = stream_id or f"{n}-0"
    return OutboxOrder(sid, f"0190a0e0-0000-7000-8000-00000000000{n}", f"u{n}", 1, f"k{n}", 1_700_000_000_000_000)


def entry(n: int) -> list[OutboxOrder]:
    """An outbox entry of one order."""
    return [order(n)]


async def test_a_shard_down_fails_the_tick_after_the_other_skus_are_relayed() -> None:
    outbox = FakeOutboxes({"a": [entry(1)], "b": [entry(2)], "c": [entry(3)]}, down={"b"})
    handoff, metrics = FakeSink(), GateMetrics(None)
    relay = Relay(outbox, handoff, FakeAcks(), metrics=metrics, stale_ms=1000, batch=10, discover_s=1.0)
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
    traced = OutboxOrder("9-0", "0190a0e0-0000-7000-8000-000000000009", "u9", 1, "k9", 1, trace=traceparent)
    outbox = FakeOutboxes({"a": [entry(1), [traced]]})
    handoff = FakeSink()
    relay = Relay(outbox, handoff, FakeAcks(), metrics=GateMetrics(None), stale_ms=1000, batch=10, discover_s=1.0)
    assert await relay.tick() == 2
    assert handoff.traces == ["", traceparent]


async def test_only_a_delivered_entry_is_acked() -> None:
    """The delivery report decides: acknowledged by Kafka → acked in the outbox; failed → left for the next tick."""
    outbox, handoff, acks = FakeOutboxes({"a": [entry(1), entry(2)]}), FakeSink(), FakeAcks()
    relay = Relay(outbox, handoff, acks, metrics=GateMetrics(None), stale_ms=1000, batch=10, discover_s=0)
    relay.note_sku("a")
    assert await relay.tick() == 2
    delivered, failed = handoff.callbacks
    delivered(None)
    failed(HandoffError("message timed out"))
    assert acks.acked == [("a", "1-0")]


async def test_an_entry_of_several_orders_is_acked_once_all_are_delivered() -> None:
    """One entry holds one admit.lua call's orders: deleting it before every one is in Kafka would lose the rest."""
    both, failing = [order(1, "5-0"), order(2, "5-0")], [order(3, "6-0"), order(4, "6-0")]
    outbox, handoff, acks = FakeOutboxes({"a": [both, failing]}), FakeSink(), FakeAcks()
    relay = Relay(outbox, handoff, acks, metrics=GateMetrics(None), stale_ms=1000, batch=10, discover_s=0)
    relay.note_sku("a")
    assert await relay.tick() == 4
    first, second, third, fourth = handoff.callbacks
    first(None)
    third(None)
    assert acks.acked == []  # each entry still has an order on its way
    second(None)
    fourth(HandoffError("message timed out"))
    assert acks.acked == [("a", "5-0")]  # the failed one's entry stays: all of its orders go again next tick


async def test_an_entry_with_an_order_still_in_flight_is_left_to_its_gate() -> None:
    """The gate that admitted it is producing one of its orders: that gate acks the entry, the relay sends none."""
    outbox, handoff = FakeOutboxes({"a": [[order(1, "5-0"), order(2, "5-0")], entry(3)]}), FakeSink()
    handoff.producing.add(order(2).order_id)
    relay = Relay(outbox, handoff, FakeAcks(), metrics=GateMetrics(None), stale_ms=1000, batch=10, discover_s=0)
    relay.note_sku("a")
    assert await relay.tick() == 1
    assert [str(e.order_id) for e in handoff.sent] == [order(3).order_id]


async def test_a_refused_order_leaves_its_entry_in_the_outbox() -> None:
    """The producer's queue is full: the tick stops, and the orders already sent cannot delete the entry.

    A partly sent entry counts no order republished: all of them go again with the entry."""
    outbox, acks = FakeOutboxes({"a": [[order(1, "5-0"), order(2, "5-0")]]}), FakeAcks()
    handoff = RefusingSink(after=1)
    relay = Relay(outbox, handoff, acks, metrics=GateMetrics(None), stale_ms=1000, batch=10, discover_s=0)
    relay.note_sku("a")
    assert await relay.tick() == 0
    handoff.callbacks[0](None)
    assert acks.acked == []


class RefusingSink(FakeSink):
    """A FakeSink whose producer takes `after` messages, then refuses every one."""

    def __init__(self, after: int, *, batched: bool = False) -> None:
        super().__init__(batched=batched)
        self.after = after

    def send(self, event: OrderAccepted, on_delivered: OnDelivered, *, trace: str = "") -> None:
        if len(self.messages) >= self.after:
            raise HandoffError("local queue full")
        super().send(event, on_delivered, trace=trace)

    def send_batch(self, batch: OrdersAccepted, on_delivered: OnDelivered) -> None:
        if len(self.messages) >= self.after:
            raise HandoffError("local queue full")
        super().send_batch(batch, on_delivered)


async def test_a_batched_relay_sends_each_entry_as_one_message_and_acks_it_once_delivered() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = OutboxOrder("5-0", order(2).order_id, "u2", 3, "k2", 1_700_000_000_000_000, trace=traceparent)
    both, failing = [order(1, "5-0"), traced], [order(3, "6-0"), order(4, "6-0")]
    outbox, handoff, acks = FakeOutboxes({"a": [both, failing]}), FakeSink(batched=True), FakeAcks()
    relay = Relay(outbox, handoff, acks, metrics=GateMetrics(None), stale_ms=1000, batch=10, discover_s=0)
    relay.note_sku("a")
    assert await relay.tick() == 4
    assert handoff.messages == [2, 2]
    assert [(str(e.order_id), e.qty, e.sku) for e in handoff.sent[:2]] == [
        (order(1).order_id, 1, "a"),
        (traced.order_id, 3, "a"),
    ]
    assert handoff.traces == ["", traceparent, "", ""]
    delivered, failed = handoff.callbacks
    delivered(None)
    failed(HandoffError("message timed out"))
    assert acks.acked == [("a", "5-0")]


async def test_a_batched_relay_stops_at_a_refused_entry_and_leaves_it() -> None:
    outbox, acks = FakeOutboxes({"a": [entry(1), [order(2, "6-0"), order(3, "6-0")], entry(4)]}), FakeAcks()
    handoff = RefusingSink(after=1, batched=True)
    relay = Relay(outbox, handoff, acks, metrics=GateMetrics(None), stale_ms=1000, batch=10, discover_s=0)
    relay.note_sku("a")
    assert await relay.tick() == 1  # the first entry; the second refused, the third waits for the next tick
    assert handoff.messages == [1]
    handoff.callbacks[0](None)
    assert acks.acked == [("a", "1-0")]
