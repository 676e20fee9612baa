"""Test helpers for the Kafka → worker → PostgreSQL path: topics, events, worker processes, checks."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flashgate.events import OrderAccepted, encode
from flashgate.settings import variable
from tests.support.procs import FlashgateProcess
from tests.support.stackctl import StackHandle
from worker.settings import WorkerSettings


@dataclass(frozen=True)
class Topics:
    orders: str
    dlq: str
    group: str


def create_topics(stack: StackHandle, name: str, partitions: int = 4) -> Topics:
    t = Topics(orders=f"{name}.orders", dlq=f"{name}.dlq", group=f"{name}.writers")
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    futures = admin.create_topics([NewTopic(t.orders, partitions, 1), NewTopic(t.dlq, 1, 1)])
    for f in futures.values():
        f.result(timeout=30)
    return t


def produce(stack: StackHandle, topic: str, payloads: Iterable[tuple[bytes, bytes]]) -> None:
    """Produce (key, value) pairs with the idempotent producer and wait for every ack."""
    producer = Producer(
        {"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    for key, value in payloads:
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    assert producer.flush(30) == 0


def produce_orders(stack: StackHandle, topic: str, orders: Iterable[OrderAccepted]) -> None:
    produce(stack, topic, ((o.order_id.bytes, encode(o)) for o in orders))


# A worker is one `flashgate` process like a gate: the same spawn, signals and teardown.
WorkerProcess = FlashgateProcess


def start_worker(stack: StackHandle, topics: Topics, log_path: Path, **settings: object) -> WorkerProcess:
    env = {
        **os.environ,
        **stack.env,
        "FLASHGATE_TOPIC": topics.orders,
        "FLASHGATE_WORKER_DLQ_TOPIC": topics.dlq,
        "FLASHGATE_GROUP": topics.group,
        "FLASHGATE_WORKER_RETRY_MAX_MS": "1000",
        **{variable(WorkerSettings, k): str(v) for k, v in settings.items()},
    }
    return FlashgateProcess.spawn(["worker"], env, log_path)


@contextmanager
def new_database(stack: StackHandle, name: str) -> Iterator[str]:
    """A new, empty database `name` on the stack's PostgreSQL (dropped afterwards); yields its URL."""

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{stack.database_url.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def add_product(database_url: str, sku: str, units: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO products (sku, name, units_on_sale) VALUES ($1, $1, $2)", sku, units)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Persisted:
    order_ids: list[uuid.UUID]  # one entry per row (a duplicate would show twice)
    units_sold: int
    qty_total: int
    refused: dict[str, int]


async def persisted(database_url: str, sku: str) -> Persisted:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT order_id, qty FROM orders WHERE sku = $1", sku)
        sold = await conn.fetchval("SELECT units_sold FROM products WHERE sku = $1", sku)
        refused = await conn.fetch("SELECT reason, count(*) AS n FROM refused_orders WHERE sku = $1 GROUP BY 1", sku)
    finally:
        await conn.close()
    return Persisted(
        order_ids=[r["order_id"] for r in rows],
        units_sold=sold or 0,
        qty_total=sum(r["qty"] for r in rows),
        refused={r["reason"]: r["n"] for r in refused},
    )


def one_order_persisted(gate_url: str, database_url: str, sku: str, log: Callable[[], str]) -> Persisted:
    """POST one order to a served gate, expect 202, and wait for exactly that order's row (`log()` on failure)."""
    answer = httpx.post(
        f"{gate_url}/v1/orders",
        json={"sku": sku, "qty": 1},
        headers={"X-User-Id": "alice", "Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    state = asyncio.run(wait_persisted(database_url, sku, 1, timeout_s=60))
    assert [str(o) for o in state.order_ids] == [answer.json()["order_id"]], log()[-2000:]
    return state


async def trace_ids(database_url: str, sku: str) -> dict[str, uuid.UUID | None]:
    """order id → `trace_id` of every row of `sku`."""
    conn = await asyncpg.connect(database_url)
    try:
        return {str(r["order_id"]): r["trace_id"] for r in await conn.fetch("SELECT * FROM orders WHERE sku = $1", sku)}
    finally:
        await conn.close()


async def wait_persisted(database_url: str, sku: str, count: int, timeout_s: float = 60) -> Persisted:
    """Poll until `count` rows exist for `sku` (or the deadline passes); return what is there."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        state = await persisted(database_url, sku)
        if len(state.order_ids) >= count or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.1)


def assert_exactly_once(state: Persisted, expected: list[OrderAccepted]) -> None:
    """Every expected order is recorded once, nothing else is, and units_sold counts each once."""
    assert sorted(state.order_ids) == sorted(o.order_id for o in expected)
    assert state.units_sold == state.qty_total == sum(o.qty for o in expected)
