"""Redis answering with an error instead of a result: disk refused, read-only replica, a refused ack.

Each refusal must reach the buyer as 503 + Retry-After (`redis_unavailable`, never 500), tell the
breaker, consume nothing, leak nothing about Redis in the answer, and end with the gate serving
again by itself once Redis accepts writes. Out of memory runs on the chaos stack's Redis, under
load, with the shared invariant check (test_redis_faults.py, scenario 11). MISCONF and READONLY
need a Redis of their own (a removed data folder, a replica): an in-process gate runs on it, and
conservation is checked against Kafka (stock left + units in the topic = units on sale, and the
topic holds exactly the orders answered 202).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from flashgate import names
from gate.core import Gate
from tests.chaos.conftest import OpenSale, StartWorker
from tests.chaos.faults import ScratchRedis, disk_refused, scratch_redis
from tests.support.gatekit import consume_all, create_topic, gate_settings, order_headers, running_gate
from tests.support.poll import until
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.chaos

Post = Callable[[str], Awaitable[httpx.Response]]


async def test_disk_refused_by_redis_is_503_then_the_gate_serves_again(
    stack: StackHandle, name: str, tmp_path: Path
) -> None:
    async with scratch_redis(tmp_path / "redis") as server, _gate_on(stack, server, name, units=50) as (post, gate):
        before = await post("before")
        assert before.status_code == 202
        async with disk_refused(server):
            await _assert_refused(post, "misconf", gate, server)
        await until(_admits(post, "after"), timeout_s=20, what="admission once the disk is back")
        await _assert_conserved(stack, server, name, units=50, orders=2)


async def test_a_read_only_replica_is_503_until_promoted_then_the_gate_serves(
    stack: StackHandle, name: str, tmp_path: Path
) -> None:
    async with scratch_redis(tmp_path / "primary") as primary:
        r = primary.client()
        await put_sale(r, Sale(sku=name, units=50))
        await r.aclose()
        async with scratch_redis(tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port)) as replica:
            await _synced(replica, name)
            async with _gate_on(stack, replica, name, units=None) as (post, gate):
                await _assert_refused(post, "readonly", gate, replica)
                r = replica.client()
                await r.replicaof("NO", "ONE")  # the failover: the replica is the primary now
                await r.aclose()
                await until(_admits(post, "after"), timeout_s=20, what="admission once promoted")
                await _assert_conserved(stack, replica, name, units=50, orders=1)


async def test_an_ack_redis_refuses_answers_queued_and_a_later_replay_reads_the_row(
    stack: StackHandle, workers: StartWorker, open_sale: OpenSale, tmp_path: Path
) -> None:
    """The first answer may say `accepted` only once the entry is gone from the outbox.

    Kafka is slowed (linger 1.5 s) so that Redis refuses writes between the admission and the
    delivery: the ack fails, the answer is `queued`. The worker persists the order meanwhile; the
    relay would republish the entry only after a minute, so a replay still finds it in the outbox,
    and answers `accepted` because PostgreSQL has the row (never `queued` after GET said
    `persisted`).
    """
    sku = await open_sale(5)  # the product row, for the worker
    workers()
    async with scratch_redis(tmp_path / "redis") as server:
        r = server.client()
        await put_sale(r, Sale(sku=sku, units=5))
        settings = gate_settings(
            stack,
            names.ORDERS_TOPIC,
            redis_url=server.url,
            database_url=stack.database_url,
            linger_ms=1500,
            delivery_budget_ms=8000,
            relay_stale_ms=60_000,
        )
        async with running_gate(settings) as (client, _):
            headers = order_headers("ann", "k1")
            first = asyncio.create_task(client.post("/v1/orders", json={"sku": sku, "qty": 1}, headers=headers))

            async def admitted() -> bool:
                return await r.xlen(names.outbox_key(sku)) == 1

            await until(admitted, what="the order in the outbox")
            async with disk_refused(server):
                answer = await first
                assert (answer.status_code, answer.json()["status"]) == (202, "queued")
                order_id = answer.json()["order_id"]

                async def persisted() -> bool:
                    res = await client.get(f"/v1/orders/{order_id}", headers=headers)
                    return res.status_code == 200 and res.json()["status"] == "persisted"

                await until(persisted, timeout_s=30, what="the row, read by GET")
            assert await r.xlen(names.outbox_key(sku)) == 1  # the failed ack left the entry
            replay = await client.post("/v1/orders", json={"sku": sku, "qty": 1}, headers=headers)
            assert replay.headers["idempotent-replayed"] == "true"
            assert replay.json() == {**answer.json(), "status": "accepted"}
        await r.aclose()


@asynccontextmanager
async def _gate_on(
    stack: StackHandle, server: ScratchRedis, sku: str, *, units: int | None
) -> AsyncIterator[tuple[Post, Gate]]:
    """An in-process gate on `server` (a sale of `units` put there first, unless None) and its topic."""
    if units is not None:
        r = server.client()
        await put_sale(r, Sale(sku=sku, units=units))
        await r.aclose()
    create_topic(stack, sku)
    async with running_gate(gate_settings(stack, sku, redis_url=server.url, delivery_budget_ms=5000)) as (client, gate):

        async def post(key: str) -> httpx.Response:
            return await client.post("/v1/orders", json={"sku": sku, "qty": 1}, headers=order_headers("v", key))

        yield post, gate


async def _assert_refused(post: Post, label: str, gate: Gate, server: ScratchRedis) -> None:
    """Five orders, each 503 + Retry-After, problem+json, no internals; the breaker opened; nothing written."""
    r = server.client()
    keys_before = await r.dbsize()
    for i in range(5):
        res = await post(f"{label}{i}")
        assert (res.status_code, 1 <= int(res.headers["retry-after"]) <= 3) == (503, True), res.text
        assert res.headers["content-type"] == "application/problem+json"
        body: dict[str, Any] = res.json()
        assert body["code"] == "redis_unavailable"
        for internal in ("127.0.0.1", str(server.port), "MISCONF", "READONLY", "Error"):
            assert internal not in res.text, res.text
    assert gate.batcher.breaker_open
    assert await r.dbsize() == keys_before
    await r.aclose()


def _admits(post: Post, key: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:  # the breaker lets a probe through after its cool-down
        return (await post(key)).status_code == 202

    return check


async def _synced(replica: ScratchRedis, sku: str) -> None:
    r = replica.client()

    async def has_the_sale() -> bool:
        return (await r.info("replication"))["master_link_status"] == "up" and bool(
            await r.exists(names.stock_key(sku))
        )

    await until(has_the_sale, timeout_s=30, what="the replica in sync")
    await r.aclose()


async def _assert_conserved(stack: StackHandle, server: ScratchRedis, sku: str, *, units: int, orders: int) -> None:
    """Stock left + units in the topic = units on sale; the topic holds exactly `orders` orders, once each."""
    r = server.client()
    stock_left = int(str(await r.get(names.stock_key(sku))))
    bought = sum(int(units) for units in await r.hvals(names.bought_key(sku)))
    await r.aclose()
    delivered = consume_all(stack, sku, expect=orders)
    assert len({e.order_id for e in delivered}) == len(delivered) == orders
    assert stock_left + sum(e.qty for e in delivered) == stock_left + bought == units
