"""Helpers for gate tests: a Redis admission client on the test stack, sales, JWTs, topics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import jwt
import redis.asyncio as aioredis
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from gate.admission import AdmissionClient
from gate.breaker import Breaker
from gate.redis_batch import RedisBatcher
from gate.scripts import Scripts
from tests.stackctl import StackHandle

SECRET = "test-secret-that-is-long-enough-for-hs256"


def redis_client(stack: StackHandle) -> aioredis.Redis:
    return aioredis.Redis.from_url(stack.redis_url, decode_responses=True, socket_timeout=5)


@asynccontextmanager
async def admission_client(stack: StackHandle) -> AsyncIterator[tuple[AdmissionClient, aioredis.Redis]]:
    """An AdmissionClient over a batcher with a generous timeout, and a plain client for checks."""
    client = redis_client(stack)
    batcher = RedisBatcher(client, Breaker(failures_to_open=1000, cooldown_s=0.1), timeout_s=5)
    try:
        yield AdmissionClient(batcher, Scripts(), idem_ttl_s=60), client
    finally:
        await batcher.close()
        await client.aclose()


def token(sub: str, *, secret: str = SECRET, ttl_s: int = 300) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + ttl_s}, secret, algorithm="HS256")


def create_topic(stack: StackHandle, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(timeout=30)


def consume_all(stack: StackHandle, topic: str, *, expect: int, timeout_s: float = 30.0) -> list[bytes]:
    """Read `topic` from the start until `expect` messages arrived, then 1 s more for extras."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": f"g-{topic}-{time.time_ns()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    settle: float | None = None
    try:
        while time.monotonic() < (settle or deadline):
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None and (value := msg.value()) is not None:
                got.append(value)
            if settle is None and len(got) >= expect:
                settle = time.monotonic() + 1.0
    finally:
        consumer.close()
    return got
