"""Helpers for gate tests: a Redis admission client on the test stack, sales, JWTs, topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import redis.asyncio as aioredis
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flashgate.events import OrderAccepted
from gate.admission import AdmissionClient
from gate.app import create_app
from gate.breaker import Breaker
from gate.core import Gate
from gate.outbox import OutboxClient
from gate.redis_batch import RedisBatcher
from gate.scripts import Scripts
from gate.settings import AuthSettings, GateSettings
from tests.support.kafkautil import consume_orders
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import StackHandle

SECRET = "test-secret-that-is-long-enough-for-hs256"


def redis_client(stack: StackHandle) -> aioredis.Redis:
    return aioredis.Redis.from_url(stack.redis_url, decode_responses=True, socket_timeout=5)


async def open_sale(stack: StackHandle, sale: Sale) -> None:
    """Put one sale on the stack's Redis (tests/support/sales.put_sale) with a client of its own."""
    r = redis_client(stack)
    try:
        await put_sale(r, sale)
    finally:
        await r.aclose()


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


@asynccontextmanager
async def outbox_client(stack: StackHandle) -> AsyncIterator[OutboxClient]:
    """An OutboxClient (ack, claim, lengths) over a batcher of its own, with a generous timeout."""
    client = redis_client(stack)
    batcher = RedisBatcher(client, Breaker(failures_to_open=1000, cooldown_s=0.1), timeout_s=5)
    try:
        yield OutboxClient(batcher, Scripts())
    finally:
        await batcher.close()
        await client.aclose()


def token(sub: str, *, secret: str = SECRET, ttl_s: int = 300) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + ttl_s}, secret, algorithm="HS256")


def create_topic(stack: StackHandle, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(timeout=30)


def consume_all(
    stack: StackHandle, topic: str, *, expect: int, sku: str | None = None, timeout_s: float = 30.0
) -> list[OrderAccepted]:
    """The orders of `topic` from the start (of `sku` only, if given), whatever messages hold them:
    `expect` orders, and any extras 1 s more brings (duplicates)."""
    consumed = consume_orders(stack.kafka_bootstrap, topic, expect, sku=sku, settle_s=1.0, timeout_s=timeout_s)
    return [o.event for o in consumed]


def gate_settings(stack: StackHandle, topic: str, **overrides: Any) -> GateSettings:
    """Settings for an in-process gate on the test stack; JWT HS256 with SECRET unless overridden."""
    values: dict[str, Any] = {
        "redis_url": stack.redis_url,
        "kafka_bootstrap": stack.kafka_bootstrap,
        "auth": AuthSettings(hs256_secret=SECRET),
        "topic": topic,
        # Relay only this gate's SKUs: other tests' outboxes must not leak into this topic.
        "relay_discover_ms": 0,
    }
    return GateSettings(**{**values, **overrides})


@asynccontextmanager
async def running_gate(settings: GateSettings) -> AsyncIterator[tuple[httpx.AsyncClient, Gate]]:
    """The app with its lifespan running, behind an in-process HTTP client."""
    app = create_app(settings)
    async with app.lifespan():
        # httpx's ASGI transport runs concurrent requests concurrently, in this test's loop.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gate", timeout=30) as client:
            yield client, app.state.gate


def order_headers(user: str, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}", "Idempotency-Key": key}


async def place_each(
    client: httpx.AsyncClient, sku: str, extra: dict[str, dict[str, str]], *, together: bool = False
) -> dict[str, str]:
    """One order of 1 unit per buyer of `extra` (buyer → extra headers), each answered 202; buyer → order id.

    One after the other, or with `together` all at once (so they share one admission call).
    """

    async def place(who: str, headers: dict[str, str]) -> str:
        answer = await client.post(
            "/v1/orders", json={"sku": sku, "qty": 1}, headers={**order_headers(who, who), **headers}
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["order_id"])

    if together:
        ids = await asyncio.gather(*(place(who, headers) for who, headers in extra.items()))
        return dict(zip(extra, ids, strict=True))
    return {who: await place(who, headers) for who, headers in extra.items()}
