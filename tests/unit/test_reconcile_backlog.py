"""The backlog reader waits out a broker still loading the writers' group, and only that."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from reconcile.backlog import _committed


class LoadingBroker:
    """A consumer double whose committed() fails `failures` times with the given error first."""

    def __init__(self, failures: int, error: KafkaError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(self.error)
        return partitions


@pytest.mark.parametrize("retriable", [True, False])  # librdkafka does not always flag NOT_COORDINATOR
def test_coordinator_errors_are_waited_out(retriable: bool) -> None:
    broker: Any = LoadingBroker(2, KafkaError(KafkaError.NOT_COORDINATOR, retriable=retriable))
    tps = [TopicPartition("orders", 0)]
    assert _committed(broker, tps, time.monotonic() + 10) == tps
    assert broker.calls == 3


def test_other_errors_and_the_deadline_are_not() -> None:
    fatal: Any = LoadingBroker(1, KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    with pytest.raises(KafkaException):
        _committed(fatal, [], time.monotonic() + 10)
    endless: Any = LoadingBroker(10**6, KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, retriable=True))
    with pytest.raises(KafkaException):
        _committed(endless, [], time.monotonic() + 0.5)
