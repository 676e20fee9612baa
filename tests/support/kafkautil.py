"""Reading Kafka from tests: the first messages of a topic, and a consumer group's lag."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from flashgate import events, tracecontext
from flashgate.events import OrderAccepted, OrdersAccepted

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
    weight: Callable[[Message], int] | None = None,
) -> list[Message]:
    """Read `topic` from the beginning, via a fresh group, until `count` messages passed `keep` (all
    pass without it); fewer if the deadline passes first. With `weight`, a message counts for
    `weight(message)` (the orders it holds) instead of one, and the messages up to `count` are kept.

    With `settle_s`, go on reading that long once `count` arrived and keep any extras too, so a
    test can see duplicates; without it, never more than `count`.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    got: list[Message] = []
    counted = 0
    deadline = time.monotonic() + timeout_s
    settling = False
    try:
        while time.monotonic() < deadline:
            if counted >= count and not settling:
                if not settle_s:
                    break
                settling, deadline = True, time.monotonic() + settle_s
            batch = consumer.consume(500 if settling or weight else count - counted, timeout=0.1)
            for m in batch:
                if m.error() is None and (keep is None or keep(m)):
                    if counted < count or settling:
                        got.append(m)
                    counted += 1 if weight is None else weight(m)
    finally:
        consumer.close()
    return got


@dataclass(frozen=True)
class Consumed:
    """One order read from the orders topic, whichever event version its message was."""

    event: OrderAccepted
    trace: str  # its traceparent: inside a version-2 message, a version-1 message's header; "" for none
    message: Message


def orders_of(message: Message) -> list[Consumed]:
    """The orders of one message of the orders topic (EventDecodeError for one that is not an order event)."""
    decoded = events.decode_any(message.value() or b"")
    if isinstance(decoded, OrdersAccepted):
        return [Consumed(e, o.traceparent, message) for e, o in zip(decoded.events(), decoded.orders, strict=True)]
    header = dict(message.headers() or []).get(tracecontext.HEADER)
    return [Consumed(decoded, header.decode() if isinstance(header, bytes) else "", message)]


def consume_orders(
    bootstrap: str, topic: str, count: int, *, sku: str | None = None, settle_s: float = 0.0, timeout_s: float = 30
) -> list[Consumed]:
    """`consume`, counting orders instead of messages: `count` orders or more (with `settle_s`, extras
    too); with `sku`, that SKU's orders only (messages of other SKUs are passed over)."""

    def ours(m: Message) -> bool:
        try:
            return sku is None or all(o.event.sku == sku for o in orders_of(m))
        except events.EventDecodeError:
            return False

    messages = consume(
        bootstrap, topic, count, keep=ours, settle_s=settle_s, timeout_s=timeout_s, weight=lambda m: len(orders_of(m))
    )
    return [order for m in messages for order in orders_of(m)]


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
