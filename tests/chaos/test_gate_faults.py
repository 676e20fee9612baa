"""The gate in-process under faults, over real Redis and Kafka: Kafka down, Redis killed.

The fine-grained contract (queued status, the relay's retries, breaker, readiness, problem
codes); the served gate under load, with the invariant check, is in the other chaos modules
(the last-unit race moved to test_last_unit.py, through served gate processes and a worker).
Every test that stops or kills a service starts it again in `finally`.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from flashgate import events, names
from gate.sales import Sale, put_sale
from tests.gatekit import consume_all, create_topic, gate_settings, order_headers, redis_client, running_gate, until
from tests.stackctl import StackHandle

pytestmark = pytest.mark.chaos


async def test_kafka_down_orders_queue_then_relay_publishes_each_exactly_once(stack: StackHandle, name: str) -> None:
    create_topic(stack, name, partitions=3)
    r = redis_client(stack)
    await put_sale(r, Sale(sku=name, units=20))
    settings = gate_settings(
        stack, name, delivery_budget_ms=300, message_timeout_ms=1000, relay_stale_ms=3000, relay_interval_ms=200
    )
    async with running_gate(settings) as (client, gate):
        stack.run("stop", "kafka")
        try:
            answers = [
                await client.post("/v1/orders", json={"sku": name, "qty": 1}, headers=order_headers(f"u{i}", "k"))
                for i in range(8)
            ]
            assert [a.status_code for a in answers] == [202] * 8
            assert {a.json()["status"] for a in answers} == {"queued"}
            order_ids = {a.json()["order_id"] for a in answers}
            assert await r.xlen(names.outbox_key(name)) == 8
            first = answers[0].json()["order_id"]
            status = await client.get(f"/v1/orders/{first}", headers=order_headers("u0", "-"))
            assert status.json()["status"] == "queued"
            # Kafka down: the relay keeps retrying and nothing is lost or handed back.
            await until(lambda: _true_after(gate.relay.republished >= 8), timeout_s=30, what="relay attempts")
            assert await r.xlen(names.outbox_key(name)) == 8
        finally:
            stack.run("start", "kafka")

        async def outbox_empty() -> bool:
            return await r.xlen(names.outbox_key(name)) == 0

        await until(outbox_empty, timeout_s=90, what="outbox drained after Kafka came back")
        status = await client.get(f"/v1/orders/{first}", headers=order_headers("u0", "-"))
        assert status.json()["status"] == "accepted"
    assert await r.get(names.stock_key(name)) == "12"  # never handed back
    await r.aclose()
    published = Counter(str(events.decode(m).order_id) for m in consume_all(stack, name, expect=8, timeout_s=60))
    assert set(published) == order_ids
    assert set(published.values()) == {1}, published


async def _true_after(value: bool) -> bool:
    return value


async def test_redis_killed_answers_503_fast_then_recovers(stack: StackHandle, name: str) -> None:
    r = redis_client(stack)
    await put_sale(r, Sale(sku=name, units=50))
    await r.aclose()
    async with running_gate(gate_settings(stack, name, delivery_budget_ms=9000)) as (client, gate):

        async def order(key: str) -> tuple[int, dict[str, str], dict[str, object], float]:
            started = time.perf_counter()
            res = await client.post("/v1/orders", json={"sku": name, "qty": 1}, headers=order_headers("v", key))
            return res.status_code, dict(res.headers), res.json(), time.perf_counter() - started

        assert (await order("before"))[0] == 202
        stack.run("kill", "redis")
        try:
            slowest = 0.0
            for i in range(10):
                status, headers, body, elapsed = await order(f"down{i}")
                assert (status, headers["retry-after"]) == (503, "1")
                assert headers["content-type"] == "application/problem+json"
                assert body["code"] == "redis_unavailable"
                slowest = max(slowest, elapsed)
            assert gate.batcher.breaker.is_open
            ready = await client.get("/health/ready")
            assert (ready.status_code, ready.json()["code"]) == (503, "not_ready")
            # The contract says 503 within 300 ms; refused connections answer in a few ms.
            assert slowest < 0.3, slowest
        finally:
            stack.run("start", "redis")

        async def admitted_again() -> bool:
            return (await order("after"))[0] == 202

        await until(admitted_again, timeout_s=20, what="admission after Redis restart")
    r = redis_client(stack)
    assert await r.get(names.stock_key(name)) == "48"  # 'before' and 'after'; every 503 took nothing
    await r.aclose()
