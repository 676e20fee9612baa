"""worker/dlq.py against a fake producer: a poison message keeps its origin and its trace context."""

from __future__ import annotations

from typing import Any, cast

from confluent_kafka import Producer

from worker.batch import Incoming, Poison
from worker.dlq import DeadLetters

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class FakeProducer:
    def __init__(self) -> None:
        self.headers: list[list[tuple[str, bytes]]] = []

    def produce(self, _topic: str, *, key: Any, value: Any, headers: Any, on_delivery: Any) -> None:
        self.headers.append(headers)
        on_delivery(None, None)

    def flush(self, _timeout: float) -> int:
        return 0


def test_a_poison_message_keeps_its_traceparent_in_the_dlq() -> None:
    producer = FakeProducer()
    dlq = DeadLetters(cast(Producer, producer), "orders.dlq", timeout_s=1)
    dlq.send([
        Poison(Incoming("orders", 2, 7, None, b"{oops", TRACEPARENT), "EventDecodeError: not JSON"),
        Poison(Incoming("orders", 2, 8, None, b"{oops"), "EventDecodeError: not JSON"),
    ])  # fmt: skip
    traced, plain = (dict(h) for h in producer.headers)
    assert traced["traceparent"] == TRACEPARENT
    assert (traced["source_partition"], traced["source_offset"]) == (b"2", b"7")
    assert "traceparent" not in plain
