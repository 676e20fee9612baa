"""Kafka handoff with a producer double: delivery reports resolve futures; a fatal error recreates the producer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError

from flashgate.events import SCHEMA_VERSION, OrderAccepted
from gate.errors import HandoffError
from gate.handoff import Handoff
from gate.soldout import SoldOutCache


class FakeProducer:
    """Holds produced messages until told to deliver them; purge+flush fails them."""

    def __init__(self, _config: dict[str, Any]) -> None:
        self.pending: list[Any] = []
        self.refuse = False

    def produce(self, _topic: str, _value: bytes, _key: bytes, on_delivery: Any) -> None:
        if self.refuse:
            raise BufferError("queue full")
        self.pending.append(on_delivery)

    def poll(self, _timeout: float) -> int:
        return 0

    def deliver_all(self, err: Any = None) -> None:
        for cb in self.pending:
            cb(err, None)
        self.pending = []

    def purge(self) -> None:
        pass

    def flush(self, _timeout: float) -> int:
        self.deliver_all(KafkaError(KafkaError._PURGE_QUEUE, "purged"))
        return 0


def event() -> OrderAccepted:
    return OrderAccepted(SCHEMA_VERSION, uuid.uuid4(), "sku", "u", 1, "k", datetime.now(UTC))


async def test_delivery_resolves_and_fatal_error_recreates_the_producer() -> None:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config))
        return made[-1]

    handoff = Handoff({"message.timeout.ms": 1000}, "t", producer_factory=factory)
    handoff.start(asyncio.get_running_loop())
    try:
        ok = handoff.send(e := event())
        assert handoff.in_flight(str(e.order_id))
        made[0].deliver_all()
        await asyncio.wait_for(ok, 5)
        assert not handoff.in_flight(str(e.order_id))

        lost = handoff.send(event())
        handoff._on_error(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
        with pytest.raises(HandoffError, match="purged"):
            await asyncio.wait_for(lost, 5)
        assert handoff.recreated == 1
        assert len(made) == 2

        made[1].refuse = True
        with pytest.raises(HandoffError, match="refused"):
            handoff.send(event())
    finally:
        await handoff.close(1)


def test_soldout_cache_expires() -> None:
    cache = SoldOutCache(ttl_s=0.5)
    assert not cache.is_sold_out("a", 0.0)
    cache.mark("a", 1.0)
    assert cache.is_sold_out("a", 1.4)
    assert not cache.is_sold_out("a", 1.5)
    assert not cache.is_sold_out("b", 1.0)
