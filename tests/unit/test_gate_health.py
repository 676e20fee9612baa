"""gate/health.py: the readiness decision, exhaustively, and the probes against fakes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from redis.exceptions import ConnectionError as RedisConnectionError

from gate.health import Health, judge, probe_kafka, probe_redis


@pytest.mark.parametrize(
    ("started", "stopping", "redis", "kafka", "ready", "status", "why"),
    [
        (True, False, "ok", "ok", True, "ok", ""),
        (True, False, "ok", "_TRANSPORT", True, "degraded", ""),
        (True, False, "ConnectionError", "ok", False, "not_ready", "redis: ConnectionError"),
        (True, False, "TimeoutError", "_TRANSPORT", False, "not_ready", "redis: TimeoutError"),
        (False, False, "ok", "ok", False, "not_ready", "starting"),
        (True, True, "ok", "ok", False, "not_ready", "stopping"),
        (False, True, "ok", "ok", False, "not_ready", "starting"),
    ],
)
def test_judge(started: bool, stopping: bool, redis: str, kafka: str, ready: bool, status: str, why: str) -> None:
    h = judge(started=started, stopping=stopping, redis=redis, kafka=kafka)
    assert (h.ready, h.status, h.why) == (ready, status, why)
    assert h.kafka_degraded is (kafka != "ok")


def test_body_names_each_dependency() -> None:
    h = Health(True, "ok", "_TRANSPORT", "")
    assert h.body() == {"status": "degraded", "redis": "ok", "kafka": "_TRANSPORT"}


class FakeRedis:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    async def ping(self) -> bool:
        if self.behaviour == "down":
            raise RedisConnectionError("Error 111 connecting to 10.0.0.1:6379")
        if self.behaviour == "slow":
            await asyncio.sleep(1)
        return True


@pytest.mark.parametrize(
    ("behaviour", "expected"), [("up", "ok"), ("down", "ConnectionError"), ("slow", "TimeoutError")]
)
async def test_probe_redis(behaviour: str, expected: str) -> None:
    assert await probe_redis(FakeRedis(behaviour), timeout_s=0.05) == expected


class FakeMetadata:
    def __init__(self, error: KafkaException | None) -> None:
        self.error = error

    def list_topics(self, topic: str, timeout_s: float) -> Any:
        if self.error is not None:
            raise self.error
        return object()


async def test_probe_kafka_ok_and_the_error_code_never_its_text() -> None:
    assert await probe_kafka(FakeMetadata(None), "orders", 0.1) == "ok"
    down = KafkaException(KafkaError(KafkaError._TRANSPORT, "broker 10.0.0.2:9092 down"))
    assert await probe_kafka(FakeMetadata(down), "orders", 0.1) == "_TRANSPORT"
    assert await probe_kafka(FakeMetadata(KafkaException()), "orders", 0.1) == "unreachable"
