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


def consume(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    keep: Callable[[Message], bool] | None = None,
    settle_s: float = 0.0,
    timeout_s: float = 30,
) -> list[Message]:
    """Read `topic` from the beginning, via a fresh group, until `count` messages passed `keep` (all
    pass without it); fewer if the deadline passes first.

    With `settle_s`, go on reading that long once `count` arrived and keep any extras too, so a
    test can see duplicates; without it, never more than `count`.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    settling = False
    try:
        while time.monotonic() < deadline:
            if len(got) >= count and not settling:
                if not settle_s:
                    break
                settling, deadline = True, time.monotonic() + settle_s
            batch = consumer.consume(500 if settling else count - len(got), timeout=0.1)
            got.extend(m for m in batch if m.error() is None and (keep is None or keep(m)))
    finally:
        consumer.close()
    return got if settling else got[:count]


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
