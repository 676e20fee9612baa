"""Kafka from the launcher: topics created, a produce/consume round trip, messages kept after a kill."""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flashgate.names import DLQ_TOPIC, ORDERS_TOPIC
from tests.support import kafkautil
from tests.support.stackctl import StackHandle


def create_topic(stack: StackHandle, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)


def produce(stack: StackHandle, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    for v in values:
        producer.produce(topic, key=v, value=v)
    assert producer.flush(30) == 0


def consume(stack: StackHandle, topic: str, count: int) -> list[bytes]:
    return [m.value() or b"" for m in kafkautil.consume(stack.kafka_bootstrap, topic, count)]


def test_pipeline_topics_exist(stack: StackHandle) -> None:
    topics = AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(timeout=10).topics
    assert len(topics[ORDERS_TOPIC].partitions) > 1
    assert len(topics[DLQ_TOPIC].partitions) == 1


def test_produce_consume_round_trip(stack: StackHandle, name: str) -> None:
    create_topic(stack, name)
    produce(stack, name, [b"a", b"b", b"c"])
    assert consume(stack, name, 3) == [b"a", b"b", b"c"]


def test_acknowledged_message_survives_kill(stack: StackHandle, name: str) -> None:
    create_topic(stack, name)
    produce(stack, name, [b"before-kill"])
    stack.run("kill", "kafka")
    assert stack.pids()["kafka"] is None
    stack.run("start", "kafka")
    assert consume(stack, name, 1) == [b"before-kill"]
