"""worker/dlq.py against a fake producer: a poison message keeps its origin and its trace context."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from tests.support.fakes import FakeProducer
from worker.batch import Incoming, Poison
from worker.dlq import DeadLetters
from worker.errors import DeliveryFailed

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_poison_message_keeps_its_traceparent_in_the_dlq() -> None:
    producer = FakeProducer()  # its flush acknowledges what it holds
    dlq = DeadLetters(producer, "orders.dlq", timeout_s=1)
    dlq.send([
        Poison(Incoming("orders", 2, 7, None, b"{oops", TRACEPARENT), "EventDecodeError: not JSON"),
        Poison(Incoming("orders", 2, 8, None, b"{oops"), "EventDecodeError: not JSON"),
    ])  # fmt: skip
    traced, plain = (dict(m.headers) for m in producer.sent)
    assert traced["traceparent"] == TRACEPARENT
    assert (traced["source_partition"], traced["source_offset"]) == (b"2", b"7")
    assert "traceparent" not in plain
    assert {m.topic for m in producer.sent} == {"orders.dlq"}


def test_a_dead_letter_kafka_does_not_acknowledge_is_delivery_failed() -> None:
    producer = FakeProducer()
    producer.flush_error = KafkaError(KafkaError._MSG_TIMED_OUT, "timed out")
    dlq = DeadLetters(producer, "orders.dlq", timeout_s=1)
    with pytest.raises(DeliveryFailed, match="timed out"):
        dlq.send([Poison(Incoming("orders", 0, 1, None, b"{oops"), "EventDecodeError: not JSON")])
