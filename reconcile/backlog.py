"""The Kafka backlog: order messages past the writers' committed offsets, read without joining the group."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Collection

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from flashgate.events import EventDecodeError, OrdersAccepted, decode_any
from flashgate.kafka_client import PLAINTEXT, KafkaSecurity, client_config
from reconcile.errors import ReconcileError
from reconcile.model import OrderRef, to_us

# A fresh broker answers these while it sets up the group coordinator; librdkafka does not
# always flag them retriable on committed().
COORDINATOR_NOT_READY = frozenset(
    {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE}
)
NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group never committed on this partition


def read_backlog(
    bootstrap: str,
    topic: str,
    group: str,
    skus: Collection[str] | None,
    *,
    timeout_s: float = 60.0,
    security: KafkaSecurity | None = None,
) -> dict[str, list[OrderRef]]:
    """Orders per SKU in `topic` from `group`'s committed offsets up to the current end.

    The consumer only assigns partitions (never subscribes or commits), so the writers'
    group is untouched. Poison messages are skipped: they are the DLQ's business, not stock.
    Raises ReconcileError when Kafka cannot be read within `timeout_s`.
    """
    role = {
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "logger": logging.getLogger("flashgate.kafka"),
    }
    consumer = Consumer(client_config(bootstrap, security or PLAINTEXT, role))
    try:
        return _read(consumer, topic, skus, time.monotonic() + timeout_s)
    except KafkaException as e:
        raise ReconcileError(f"cannot read the Kafka backlog of {topic!r}: {e}") from e
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, skus: Collection[str] | None, deadline: float) -> dict[str, list[OrderRef]]:
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
    if not partitions or metadata.topics[topic].error is not None:
        raise ReconcileError(f"Kafka topic {topic!r} does not exist")
    committed = _committed(consumer, [TopicPartition(topic, p) for p in partitions], deadline)
    start: list[TopicPartition] = []
    end: dict[int, int] = {}
    for tp in committed:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
        offset = low if tp.offset == NO_OFFSET else max(tp.offset, low)
        if offset < high:
            start.append(TopicPartition(topic, tp.partition, offset))
            end[tp.partition] = high
    found: dict[str, list[OrderRef]] = defaultdict(list)
    if not start:
        return found
    consumer.assign(start)
    while end:
        if time.monotonic() > deadline:
            raise ReconcileError(f"the Kafka backlog of {topic!r} was not read in time ({len(end)} partitions left)")
        for msg in consumer.consume(num_messages=10_000, timeout=0.5):
            if msg.error() is None and _within(msg, end):
                for sku, order in _orders(msg, skus):
                    found[sku].append(order)
    return found


def _committed(consumer: Consumer, partitions: list[TopicPartition], deadline: float) -> list[TopicPartition]:
    """The group's committed offsets, waiting out a broker that is still loading the group
    (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS: retriable errors on a fresh broker).
    """
    while True:
        try:
            return list(consumer.committed(partitions, timeout=10))
        except KafkaException as e:
            err = e.args[0]
            if not (err.retriable() or err.code() in COORDINATOR_NOT_READY) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _within(msg: Message, end: dict[int, int]) -> bool:
    """Is `msg` before its partition's end? Drops a partition from `end` once its end is reached."""
    partition, offset = msg.partition(), msg.offset()
    if partition is None or offset is None or partition not in end:
        return False
    if offset >= end[partition] - 1:
        past_end = offset >= end[partition]
        del end[partition]
        return not past_end
    return True


def _orders(msg: Message, skus: Collection[str] | None) -> list[tuple[str, OrderRef]]:
    """The orders of one message, of either event version; none for poison or another SKU's."""
    try:
        decoded = decode_any(msg.value() or b"")
    except EventDecodeError:
        return []
    if skus is not None and decoded.sku not in skus:
        return []
    events = decoded.events() if isinstance(decoded, OrdersAccepted) else [decoded]
    return [
        (e.sku, OrderRef(str(e.order_id), e.user_id, e.idempotency_key, e.qty, to_us(e.accepted_at))) for e in events
    ]
