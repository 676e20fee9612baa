"""Kafka handoff over the producer double (tests/support/fakes.py): callbacks, fatal errors; the sold-out cache."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError

from gate.errors import HandoffError
from gate.handoff import Handoff
from gate.metrics import GateMetrics
from gate.soldout import SoldOutCache
from tests.support.fakes import FakeProducer
from tests.support.orders import order
from tests.support.poll import until


async def test_delivery_resolves_and_fatal_error_recreates_the_producer() -> None:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config))
        return made[-1]

    metrics = GateMetrics()
    handoff = Handoff({"message.timeout.ms": 1000}, "t", metrics=metrics, producer_factory=factory)
    handoff.start(asyncio.get_running_loop())
    results: list[HandoffError | None] = []
    try:
        handoff.send(e := order(), results.append)
        assert handoff.in_flight(str(e.order_id))
        made[0].deliver()
        assert results == [None]
        assert not handoff.in_flight(str(e.order_id))

        handoff.send(order(), results.append)
        handoff._on_error(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
        await until(lambda: len(results) == 2, timeout_s=5, interval_s=0.01)  # the next poll, on the loop, recreates
        assert isinstance(results[1], HandoffError)
        assert "purged" in str(results[1])
        assert handoff.recreated == 1
        assert len(made) == 2

        made[1].refuse = True
        with pytest.raises(HandoffError, match="refused"):
            handoff.send(order(), results.append)
        assert dict(metrics.kafka_deliveries) == {"delivered": 1, "failed": 1, "refused": 1}
    finally:
        await handoff.close(1)


class PolledProducer(FakeProducer):
    """Reports a message only from `poll`, as librdkafka does, once `ready` says so; records each poll's time."""

    def __init__(self, _config: dict[str, Any] | None = None) -> None:
        super().__init__(_config)
        self.polls: list[float] = []
        self.ready = False

    def poll(self, timeout: float = 0) -> int:
        self.polls.append(time.monotonic())
        if self.ready and self.pending:
            self.deliver()
            return 1
        return 0


async def test_the_loop_polls_only_once_the_oldest_message_has_lingered() -> None:
    producer = PolledProducer()
    handoff = Handoff(
        {"message.timeout.ms": 1000, "linger.ms": 100}, "t", metrics=GateMetrics(), producer_factory=lambda _: producer
    )
    handoff.start(asyncio.get_running_loop())
    results: list[HandoffError | None] = []
    try:
        sent = time.monotonic()
        handoff.send(order(), results.append)
        await asyncio.sleep(0.05)
        handoff.send(order(), results.append)  # joins the first one's batch: no poll of its own sooner
        await asyncio.sleep(0.03)
        assert producer.polls == []  # 80 ms: the batch cannot have gone yet
        await until(lambda: len(producer.polls) >= 3, timeout_s=5, interval_s=0.001)
        assert producer.polls[0] - sent >= 0.095  # uvloop's timers count whole ms
        assert producer.polls[2] - producer.polls[0] < 0.5  # then every poll_interval_s, until reported
        producer.ready = True
        await until(lambda: len(results) == 2, timeout_s=5, interval_s=0.001)
        assert results == [None, None]
        assert handoff.inflight == {}
        polls = len(producer.polls)
        await asyncio.sleep(0.1)
        assert len(producer.polls) == polls  # nothing in flight: the idle poll is IDLE_POLL_S away
    finally:
        await handoff.close(1)


async def test_a_failing_callback_does_not_stop_the_other_reports() -> None:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config))
        return made[-1]

    handoff = Handoff({"message.timeout.ms": 1000}, "t", metrics=GateMetrics(), producer_factory=factory)
    handoff.start(asyncio.get_running_loop())
    got: list[HandoffError | None] = []

    def boom(_: HandoffError | None) -> None:
        raise RuntimeError("boom")

    handoff.send(order(), boom)
    handoff.send(order(), got.append)
    made[0].deliver()
    assert got == [None]
    await handoff.close(1)


async def test_a_trace_context_goes_in_the_message_s_traceparent_header() -> None:
    producer = FakeProducer({})
    handoff = Handoff({"message.timeout.ms": 1000}, "t", metrics=GateMetrics(), producer_factory=lambda _: producer)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    handoff.send(order(), lambda _: None, trace=traceparent)
    handoff.send(order(), lambda _: None)
    assert [m.headers for m in producer.sent] == [[("traceparent", traceparent.encode())], None]
    await handoff.close(1)


def test_soldout_cache_answers_non_buyers_only_once_the_buyer_set_is_known() -> None:
    cache = SoldOutCache(ttl_s=0.5, buyers_max_age_s=5.0)
    assert not cache.answers_sold_out("a", "stranger", 0.0)
    assert not cache.wants_buyers("a")
    cache.mark("a", 1.0)
    assert not cache.answers_sold_out("a", "stranger", 1.1)  # no buyer set yet: ask Redis
    assert cache.wants_buyers("a")
    assert not cache.wants_buyers("a")  # one fetch at a time
    cache.set_buyers("a", frozenset({"alice"}), 1.1)
    assert cache.answers_sold_out("a", "stranger", 1.2)
    assert not cache.answers_sold_out("a", "alice", 1.2)  # a buyer may be retrying: ask Redis
    assert cache.answers_sold_out("a", "stranger", 1.49)
    assert not cache.answers_sold_out("a", "stranger", 1.5)  # expired: ask Redis
    assert not cache.answers_sold_out("b", "stranger", 1.2)


def test_soldout_cache_drops_a_buyer_set_that_may_miss_a_buyer() -> None:
    cache = SoldOutCache(ttl_s=0.5, buyers_max_age_s=5.0)
    cache.mark("a", 0.0)
    cache.wants_buyers("a")
    cache.set_buyers("a", frozenset({"alice"}), 0.0)
    cache.mark("a", 0.1, buyer_count=1)  # SOLD_OUT with the same count: set kept, no refetch
    assert not cache.wants_buyers("a")
    assert cache.answers_sold_out("a", "bob", 0.2)
    cache.mark("a", 0.3, buyer_count=2)  # another process sold after a restock
    assert not cache.answers_sold_out("a", "bob", 0.3)
    assert cache.wants_buyers("a")
    cache.set_buyers("a", frozenset({"alice", "bob"}), 0.3)
    cache.mark("a", 0.4)  # this process admitted the last units: the set changed
    assert not cache.answers_sold_out("a", "carol", 0.4)
    assert cache.wants_buyers("a")
    cache.set_buyers("a", frozenset({"alice", "bob", "carol"}), 0.4)
    cache.mark("a", 6.0, buyer_count=3)  # old set: refetched, still used meanwhile
    assert cache.wants_buyers("a")
    assert cache.answers_sold_out("a", "dave", 6.1)
    cache.fetch_failed("a")
    assert cache.wants_buyers("a")
