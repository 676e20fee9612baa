"""`GET /v1/orders/{id}` over HTTP with the whole pipeline: accepted → persisted, and PostgreSQL down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gatekit import gate_settings, order_headers, redis_client, running_gate
from tests.support.pipeline import Topics, WorkerProcess, add_product, create_topics, start_worker
from tests.support.poll import until
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import StackHandle

PROBLEM = "application/problem+json"


@pytest.fixture
def topics(stack: StackHandle, name: str) -> Topics:
    return create_topics(stack, name, partitions=1)


@pytest.fixture
def worker(stack: StackHandle, topics: Topics, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = start_worker(stack, topics, tmp_path / "worker.log")
    yield w
    w.close()


async def open_sale(stack: StackHandle, sku: str, units: int) -> None:
    await add_product(stack.database_url, sku, units)
    r = redis_client(stack)
    try:
        await put_sale(r, Sale(sku=sku, units=units))
    finally:
        await r.aclose()


async def test_status_becomes_persisted_once_the_worker_wrote_the_row(
    stack: StackHandle, topics: Topics, worker: WorkerProcess, name: str
) -> None:
    await open_sale(stack, name, 3)
    settings = gate_settings(stack, topics.orders, database_url=stack.database_url, delivery_budget_ms=9000)
    async with running_gate(settings) as (client, _):
        res = await client.post("/v1/orders", json={"sku": name, "qty": 2}, headers=order_headers("alice", "k1"))
        assert res.status_code == 202, res.text
        order_id = res.json()["order_id"]
        url = f"/v1/orders/{order_id}"
        seen: dict[str, object] = {}

        async def persisted() -> bool:
            got = await client.get(url, headers=order_headers("alice", "-"))
            assert got.status_code == 200, got.text
            seen.update(got.json())
            return seen["status"] == "persisted"

        await until(persisted, timeout_s=60, what=f"order persisted (worker log: {worker.log_path})")
        assert seen == {
            "order_id": order_id,
            "sku": name,
            "qty": 2,
            "status": "persisted",
            "persisted_at": seen["persisted_at"],
        }
        assert str(seen["persisted_at"]).startswith("20")

        other = await client.get(url, headers=order_headers("bob", "-"))
        assert (other.status_code, other.headers["content-type"]) == (404, PROBLEM)
        unknown = await client.get(
            "/v1/orders/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", headers=order_headers("alice", "-")
        )
        assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


async def test_postgres_down_status_answers_from_redis_then_persisted_again(
    stack: StackHandle,
    topics: Topics,
    worker: WorkerProcess,
    name: str,
) -> None:
    await open_sale(stack, name, 3)
    settings = gate_settings(stack, topics.orders, database_url=stack.database_url, delivery_budget_ms=9000)
    async with running_gate(settings) as (client, gate):
        res = await client.post("/v1/orders", json={"sku": name, "qty": 1}, headers=order_headers("alice", "k1"))
        assert res.status_code == 202, res.text
        url = f"/v1/orders/{res.json()['order_id']}"

        async def status_is(expected: str) -> bool:
            got = await client.get(url, headers=order_headers("alice", "-"))
            assert got.status_code == 200, got.text
            return bool(got.json()["status"] == expected)

        await until(lambda: status_is("persisted"), timeout_s=60, what="order persisted")
        stack.run("stop", "postgres")
        try:
            down = await client.get(url, headers=order_headers("alice", "-"))
            assert down.status_code == 200, down.text
            assert down.json()["status"] == "accepted"  # Redis's answer: Kafka has it
            gone = await client.get(
                "/v1/orders/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", headers=order_headers("alice", "-")
            )
            assert gone.status_code == 404
            assert gate.records.failures >= 2  # PostgreSQL was asked both times and could not answer
        finally:
            stack.run("start", "postgres")
        # The pool reconnects by itself once PostgreSQL is back.
        await until(lambda: status_is("persisted"), timeout_s=30, what="persisted again after restart")
