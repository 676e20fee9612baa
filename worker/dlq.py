"""The dead-letter queue: poison messages go to `orders.dlq` with their origin in headers.

A poison message's `traceparent` header goes with it, so its trace leads to the DLQ.

`send` blocks until Kafka confirms every message (acks=all), so the caller may commit the
source offsets afterwards. At-least-once: a retried batch can dead-letter a message twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from flashgate import tracecontext
from worker.batch import Poison
from worker.errors import DeliveryFailed


class ProducerLike(Protocol):
    """What the DLQ uses of confluent_kafka.Producer (a double stands in for it in unit tests)."""

    def produce(
        self,
        topic: str,
        *,
        value: bytes | None,
        key: bytes | None,
        on_delivery: Callable[[KafkaError | None, Message], None],
        headers: Any,
    ) -> None: ...
    def flush(self, timeout: float) -> int: ...


class DeadLetters:
    def __init__(self, producer: ProducerLike, topic: str, *, timeout_s: float) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s

    def send(self, poison: list[Poison]) -> None:
        """Publish each poison message and wait for all acknowledgements; DeliveryFailed otherwise."""
        if not poison:
            return
        failures: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err.str())

        try:
            for p in poison:
                m = p.message
                self.producer.produce(
                    self.topic,
                    key=m.key,
                    value=m.value,
                    headers=[
                        ("error", p.error.encode()),
                        ("source_topic", m.topic.encode()),
                        ("source_partition", str(m.partition).encode()),
                        ("source_offset", str(m.offset).encode()),
                        *([] if m.traceparent is None else [(tracecontext.HEADER, m.traceparent)]),
                    ],
                    on_delivery=on_delivery,
                )
        except (BufferError, KafkaException) as e:
            raise DeliveryFailed(f"DLQ produce failed: {e}") from e
        left = self.producer.flush(self.timeout_s)
        if left or failures:
            raise DeliveryFailed(f"DLQ delivery failed: {left} unconfirmed, errors {failures[:3]}")
