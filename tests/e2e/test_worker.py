"""The worker on real Kafka and PostgreSQL: exactly-once effect through redelivery, poison, faults."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message

from flashgate.events import encode
from ops.stack.ports import free_port
from tests.support.kafkautil import consume
from tests.support.orders import order
from tests.support.pipeline import (
    Topics,
    WorkerProcess,
    add_product,
    assert_exactly_once,
    create_topics,
    persisted,
    produce,
    produce_orders,
    start_worker,
    wait_persisted,
)
from tests.support.stackctl import StackHandle

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def topics(stack: StackHandle, name: str) -> Topics:
    return create_topics(stack, name)


@pytest.fixture
def workers(stack: StackHandle, topics: Topics, tmp_path: Path) -> Iterator[StartWorker]:
    started: list[WorkerProcess] = []

    def start(**settings: object) -> WorkerProcess:
        w = start_worker(stack, topics, tmp_path / f"worker{len(started)}.log", **settings)
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()


async def test_round_trip_and_triple_delivery(
    stack: StackHandle, topics: Topics, workers: StartWorker, name: str
) -> None:
    await add_product(stack.database_url, name, 100)
    orders = [order(name, qty=1 + i % 3) for i in range(30)]
    produce_orders(stack, topics.orders, orders * 3)  # every order delivered three times
    worker = workers()
    state = await wait_persisted(stack.database_url, name, len(orders))
    await asyncio.sleep(0.5)  # a late duplicate would land now; the check below must still hold
    assert_exactly_once(await persisted(stack.database_url, name), orders)
    assert state.refused == {}
    assert worker.terminate() == 0
    assert "worker stopped" in worker.log()


async def test_poison_goes_to_dlq_with_headers(
    stack: StackHandle, topics: Topics, workers: StartWorker, name: str
) -> None:
    await add_product(stack.database_url, name, 10)
    good = [order(name) for _ in range(3)]
    bad_version = encode(order(name)).replace(b'"schema_version":1', b'"schema_version":99')
    produce(stack, topics.orders, [(b"k1", b"not json at all"), (b"k2", bad_version)])
    produce_orders(stack, topics.orders, good)
    workers()
    assert_exactly_once(await wait_persisted(stack.database_url, name, 3), good)

    got = consume(stack.kafka_bootstrap, topics.dlq, 2)
    assert sorted(m.value() or b"" for m in got) == sorted([b"not json at all", bad_version])
    headers = [header_map(m) for m in got]
    for h in headers:
        assert h["source_topic"] == topics.orders.encode()
        assert h["source_partition"].isdigit()
        assert h["source_offset"].isdigit()
    errors = {h["error"].split(b":")[0] for h in headers}
    assert errors == {b"EventDecodeError", b"UnknownSchemaVersion"}


def header_map(m: Message) -> dict[str, bytes]:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {k: v.encode() if isinstance(v, str) else (v or b"") for k, v in pairs}


async def test_oversell_reaching_the_database_is_refused(
    stack: StackHandle, topics: Topics, workers: StartWorker, name: str
) -> None:
    await add_product(stack.database_url, name, 5)
    orders = [order(name, qty=2) for _ in range(4)]  # 8 units for 5 on sale
    produce_orders(stack, topics.orders, orders)
    workers()
    state = await wait_persisted(stack.database_url, name, 2)
    for _ in range(100):
        if sum((await persisted(stack.database_url, name)).refused.values()) == 2:
            break
        await asyncio.sleep(0.1)
    state = await persisted(stack.database_url, name)
    assert len(state.order_ids) == 2
    assert state.units_sold == 4
    assert state.refused == {"oversell": 2}


async def test_postgres_stopped_mid_stream(stack: StackHandle, topics: Topics, workers: StartWorker, name: str) -> None:
    await add_product(stack.database_url, name, 10_000)
    first = [order(name) for _ in range(200)]
    second = [order(name) for _ in range(200)]
    workers(batch_max_rows=50)
    produce_orders(stack, topics.orders, first)
    await wait_persisted(stack.database_url, name, len(first))
    stack.run("stop", "postgres")
    try:
        produce_orders(stack, topics.orders, second)
        await asyncio.sleep(2)  # the worker keeps retrying against a dead database meanwhile
    finally:
        stack.run("start", "postgres")
    assert_exactly_once(await wait_persisted(stack.database_url, name, 400), first + second)


async def test_worker_killed_mid_stream_then_restarted(
    stack: StackHandle, topics: Topics, workers: StartWorker, name: str
) -> None:
    await add_product(stack.database_url, name, 100_000)
    orders = [order(name) for _ in range(3000)]
    produce_orders(stack, topics.orders, orders)
    first = workers(batch_max_rows=100)
    for _ in range(600):
        done = len((await persisted(stack.database_url, name)).order_ids)
        if done >= 300:
            break
        await asyncio.sleep(0.02)
    first.kill()
    assert len((await persisted(stack.database_url, name)).order_ids) < len(orders)
    workers(batch_max_rows=100)
    assert_exactly_once(await wait_persisted(stack.database_url, name, len(orders)), orders)


async def test_two_workers_and_rebalances(stack: StackHandle, topics: Topics, workers: StartWorker, name: str) -> None:
    await add_product(stack.database_url, name, 100_000)
    batches = [[order(name) for _ in range(500)] for _ in range(4)]
    a = workers(batch_max_rows=50)
    produce_orders(stack, topics.orders, batches[0])
    await wait_persisted(stack.database_url, name, 100)
    b = workers(batch_max_rows=50)  # joins: partitions move to it
    produce_orders(stack, topics.orders, batches[1])
    await wait_persisted(stack.database_url, name, 700)
    assert a.terminate() == 0  # leaves: its partitions move to b
    produce_orders(stack, topics.orders, batches[2] + batches[3])
    everything = [o for batch in batches for o in batch]
    assert_exactly_once(await wait_persisted(stack.database_url, name, len(everything)), everything)
    assert "assigned" in b.log()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as resp:
        body: bytes = resp.read()
    return body.decode()


async def test_metrics_endpoint(stack: StackHandle, topics: Topics, workers: StartWorker, name: str) -> None:
    port = free_port()
    await add_product(stack.database_url, name, 10)
    orders = [order(name) for _ in range(5)]
    produce_orders(stack, topics.orders, orders)
    workers(metrics_port=port)
    await wait_persisted(stack.database_url, name, 5)
    text = ""
    for _ in range(100):
        with contextlib.suppress(OSError):
            text = await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}/metrics")
        if "flashgate_worker_consumer_lag_messages{" in text:
            break
        await asyncio.sleep(0.2)
    for metric in (
        "flashgate_worker_orders_inserted_total 5.0",
        "flashgate_worker_batch_messages_bucket",
        "flashgate_worker_commit_duration_seconds_count",
        "flashgate_worker_consumer_lag_messages{",
        "flashgate_db_pool_open_connections",
        "flashgate_db_pool_busy_connections",
        "flashgate_db_pool_waiters",
        "flashgate_db_pool_acquire_duration_seconds_count",
    ):
        assert metric in text, metric
