"""The monitor on real Kafka and Redis: group lag from committed offsets, outbox backlog, sources down."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis.asyncio as aioredis
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from flashgate import names
from gate.admission import AdmitRequest
from ops.monitor.drift import ReconcilerDrift
from ops.monitor.errors import SourceUnavailable
from ops.monitor.lag import GroupLag
from ops.monitor.main import Monitor
from ops.monitor.metrics import MonitorMetrics
from ops.monitor.outbox import OutboxProbe
from ops.monitor.settings import MonitorSettings
from reconcile.settings import ReconcileSettings
from tests.support.gatekit import admission_client
from tests.support.oncall import oncall
from tests.support.orders import order
from tests.support.pipeline import create_topics, produce_orders
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import StackHandle


def commit(stack: StackHandle, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


async def read(lag: GroupLag) -> dict[int, int]:
    """`lag.read()`, waiting out a fresh broker's "coordinator load in progress" (the monitor retries too)."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            return await asyncio.to_thread(lag.read)
        except SourceUnavailable as e:
            if "LOAD_IN_PROGRESS" not in str(e) or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_group_lag_counts_from_the_committed_offset_or_the_start(stack: StackHandle, name: str) -> None:
    topics = create_topics(stack, name, partitions=2)
    produce_orders(stack, topics.orders, [order(name) for _ in range(9)])
    lag = GroupLag(stack.kafka_bootstrap, group=topics.group, topic=topics.orders, timeout_s=10)
    before = await read(lag)
    assert set(before) == {0, 1}
    assert sum(before.values()) == 9  # never committed: everything is lag
    await asyncio.to_thread(commit, stack, topics.group, topics.orders, {p: n for p, n in before.items()})
    assert await read(lag) == {0: 0, 1: 0}
    first = min(p for p, n in before.items() if n)
    await asyncio.to_thread(commit, stack, topics.group, topics.orders, {first: before[first] - 2})
    assert (await read(lag))[first] == 2


async def test_a_missing_topic_is_unavailable_and_not_created(stack: StackHandle, name: str) -> None:
    lag = GroupLag(stack.kafka_bootstrap, group=f"{name}.g", topic=f"{name}.missing", timeout_s=5)
    for _ in range(2):
        with pytest.raises(SourceUnavailable, match="is not available"):
            await asyncio.to_thread(lag.read)


async def test_outbox_backlog_and_oldest_age_per_sku(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=10))
        for i in range(3):  # admitted, never handed to Kafka: they stay in the outbox
            await client.admit(AdmitRequest(name, f"u{i}", "k", 1))
        state = await OutboxProbe(r).read()
    assert state[name].entries == 3
    assert 0 <= state[name].oldest_age_s < 600


async def test_monitor_reports_sources_down_and_drops_their_series(stack: StackHandle, name: str) -> None:
    topics = create_topics(stack, name, partitions=1)
    produce_orders(stack, topics.orders, [order(name) for _ in range(4)])
    settings = MonitorSettings(redis_url=stack.redis_url, kafka_bootstrap=stack.kafka_bootstrap)
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    good = aioredis.Redis.from_url(stack.redis_url, decode_responses=True)
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", decode_responses=True, socket_timeout=1)
    lag = GroupLag(stack.kafka_bootstrap, group=topics.group, topic=topics.orders, timeout_s=10)
    try:
        await read(lag)
        await Monitor(settings, metrics, lag=lag, outbox=OutboxProbe(good)).check_once()
        text = generate_latest(registry).decode()
        assert (
            f'flashgate_consumer_group_lag_messages{{group="{topics.group}",partition="0",topic="{topics.orders}"}} 4.0'
            in text
        )
        assert 'flashgate_monitor_source_up{source="redis"} 1.0' in text

        gone = GroupLag(stack.kafka_bootstrap, group=topics.group, topic=f"{name}.missing", timeout_s=5)
        await Monitor(settings, metrics, lag=gone, outbox=OutboxProbe(dead)).check_once()
        text = generate_latest(registry).decode()
        assert 'flashgate_monitor_source_up{source="kafka"} 0.0' in text
        assert 'flashgate_monitor_source_up{source="redis"} 0.0' in text
        assert 'flashgate_monitor_checks_total{result="failed",source="redis"} 1.0' in text
        assert "flashgate_consumer_group_lag_messages{" not in text
    finally:
        await good.aclose()
        await dead.aclose()


async def test_drift_check_hook_sets_the_drift_gauge(stack: StackHandle) -> None:
    async def drift() -> dict[str, int]:
        return {"a": -2, "b": 0}

    async def broken() -> dict[str, int]:
        raise SourceUnavailable("reconcile: PostgreSQL down")

    settings = MonitorSettings(redis_url=stack.redis_url, kafka_bootstrap=stack.kafka_bootstrap)
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    lag = GroupLag(stack.kafka_bootstrap, group="g", topic="orders", timeout_s=5)
    client = aioredis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        await Monitor(settings, metrics, lag=lag, outbox=OutboxProbe(client), drift_check=drift).check_drift()
        assert 'flashgate_reconcile_drift_units{sku="a"} -2.0' in generate_latest(registry).decode()
        await Monitor(settings, metrics, lag=lag, outbox=OutboxProbe(client), drift_check=broken).check_drift()
        text = generate_latest(registry).decode()
        assert "flashgate_reconcile_drift_units{" not in text
        assert 'flashgate_monitor_source_up{source="reconcile"} 0.0' in text
    finally:
        await client.aclose()


async def test_reconciler_drift_reads_the_real_drift_and_fails_as_unavailable(stack: StackHandle, name: str) -> None:
    topics = create_topics(stack, name)
    assert oncall(stack, "sale", "create", "--sku", name, "--name", name, "--stock", "10").returncode == 0
    client = aioredis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        await client.incrby(names.stock_key(name), 4)
        settings = ReconcileSettings(stack.redis_url, stack.database_url, stack.kafka_bootstrap, topic=topics.orders)
        check = ReconcilerDrift(settings, every_s=3600)
        assert (await check())[name] == 4
        await client.incrby(names.stock_key(name), 1)
        assert (await check())[name] == 4  # within the interval: the last result, no second run
    finally:
        await client.aclose()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"postgresql://nobody@127.0.0.1:{s.getsockname()[1]}/none"
    broken = ReconcilerDrift(ReconcileSettings(stack.redis_url, dead, stack.kafka_bootstrap), every_s=0)
    with pytest.raises(SourceUnavailable, match="reconciler dry run failed"):
        await broken()
