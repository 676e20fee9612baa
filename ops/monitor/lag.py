"""Consumer lag of one group on one topic, per partition: high watermark minus committed offset.

Read with the Kafka admin API (OffsetFetch and ListOffsets), never by joining the group, so it
works while every worker is down — which is when it matters most.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from flashgate.kafka_client import PLAINTEXT, KafkaSecurity, client_config
from ops.monitor.errors import SourceUnavailable


def partition_lag(committed: int, low: int, high: int) -> int:
    """Messages of a partition the group has yet to commit past.

    `committed` < 0 means the group never committed there, and a committed offset below `low`
    was removed by retention: either way the group resumes at `low` (auto.offset.reset=earliest).
    """
    start = committed if committed >= low else low
    return max(0, high - start)


class GroupLag:
    """`read()` → {partition: lag} for `group` on `topic`; blocking (the monitor runs it in a thread).

    Raises SourceUnavailable when Kafka does not answer within `timeout_s` or the topic is unknown.
    """

    def __init__(
        self, bootstrap: str, *, group: str, topic: str, timeout_s: float, security: KafkaSecurity | None = None
    ) -> None:
        self.group = group
        self.topic = topic
        self._timeout_s = timeout_s
        # One client for the monitor's lifetime: its futures must not outlive it.
        role = {"socket.timeout.ms": int(timeout_s * 1000)}
        self._admin = AdminClient(client_config(bootstrap, security or PLAINTEXT, role))

    def read(self) -> dict[int, int]:
        try:
            partitions = self._partitions()
            tps = [TopicPartition(self.topic, p) for p in partitions]
            request = [ConsumerGroupTopicPartitions(self.group, tps)]
            futures = self._admin.list_consumer_group_offsets(request, request_timeout=self._timeout_s)
            answer = futures[self.group].result(timeout=self._timeout_s)
            committed = {tp.partition: tp.offset for tp in answer.topic_partitions}
            high = self._offsets(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
            low = self._offsets(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        except (KafkaException, FutureTimeout) as e:
            raise SourceUnavailable(f"kafka: {e}") from e
        return {p: partition_lag(committed.get(p, -1), low[p], high[p]) for p in partitions}

    def _partitions(self) -> list[int]:
        # All topics, not list_topics(topic): a metadata request naming a topic may auto-create it.
        meta = self._admin.list_topics(timeout=self._timeout_s).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            why = meta.error if meta is not None else "no metadata"
            raise SourceUnavailable(f"kafka: topic {self.topic!r} is not available: {why}")
        return sorted(meta.partitions)

    def _offsets(self, partitions: list[int], spec: Any) -> dict[int, int]:
        futures = self._admin.list_offsets(
            {TopicPartition(self.topic, p): spec for p in partitions}, request_timeout=self._timeout_s
        )
        return {tp.partition: fut.result(timeout=self._timeout_s).offset for tp, fut in futures.items()}
