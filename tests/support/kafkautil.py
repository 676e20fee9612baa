"""Reading Kafka from tests: the first messages of a topic, and a consumer group's lag."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

T = TypeVar("T")

# Errors of a cluster that is moving a coordinator or a partition leader (a broker just died or
# restarted; a new leader's high watermark not caught up yet): asking again shortly gets the answer.
_MOVING = {
    KafkaError.OFFSET_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
}


def _until_settled(deadline: float, call: Callable[..., T], *args: object, **kwargs: object) -> T:
    """`call(*args, **kwargs)`, asked again every 0.2 s while the cluster moves a leader, until `deadline`."""
    while True:
        try:
            return call(*args, **kwargs)
        except KafkaException as e:
            error = e.args[0]
            if not (error.code() in _MOVING or error.retriable()) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def consume(bootstrap: str, topic: str, count: int, *, timeout_s: float = 30) -> list[Message]:
    """The first `count` messages of `topic` (fewer if the deadline passes), via a fresh group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got.append(msg)
    finally:
        consumer.close()
    return got


def group_lag(bootstrap: str, group: str, topic: str, *, timeout_s: float = 10) -> int:
    """Messages of `topic` not yet committed by consumer group `group` (summed over partitions).

    Reads committed offsets without joining the group (no subscribe), so it never disturbs it.
    A partition the group never committed counts from its low watermark.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    deadline = time.monotonic() + timeout_s
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        committed = _until_settled(deadline, consumer.committed, parts, timeout=timeout_s)
        lag = 0
        for tp in committed:
            low, high = _until_settled(deadline, consumer.get_watermark_offsets, tp, timeout=timeout_s)
            lag += high - (tp.offset if tp.offset >= 0 else low)
        return lag
    finally:
        consumer.close()


def consume_where(
    bootstrap: str, topic: str, keep: Callable[[Message], bool], count: int, *, timeout_s: float = 30
) -> list[Message]:
    """Read `topic` from the beginning until `count` messages passed `keep` (fewer at the deadline)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            for msg in consumer.consume(min(500, count - len(got)), timeout=0.2):
                if msg.error() is None and keep(msg) and len(got) < count:
                    got.append(msg)
    finally:
        consumer.close()
    return got
