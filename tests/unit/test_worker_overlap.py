"""The worker loop with batches overlapping in PostgreSQL: offsets still commit in fetch order.

Kafka and PostgreSQL are doubles here (unit tests): the consumer replays scripted batches and
records its commits, and each batch's transaction is a scripted coroutine.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from flashgate.events import encode
from tests.support.orders import order
from tests.support.poll import until
from worker.batch import BatchPlan, batches_in_flight
from worker.consumer import OrderWriter
from worker.dlq import DeadLetters
from worker.metrics import WorkerMetrics
from worker.pool import InstrumentedPool
from worker.settings import WorkerSettings
from worker.writer import PersistResult

Script = Callable[[int], Awaitable[None]]  # batch number (1, 2, … in fetch order) -> its "transaction"


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset
        self._value = encode(order())

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "orders"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None


class FakeConsumer:
    """Hands out the scripted batches, then nothing; records every commit as {partition: offset}."""

    def __init__(self, batches: list[list[FakeMessage]]) -> None:
        self.batches = deque(batches)
        self.commits: list[dict[int, int]] = []

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if self.batches:
            return self.batches.popleft()
        time.sleep(timeout)
        return []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append({tp.partition: tp.offset for tp in offsets})

    def assignment(self) -> list[TopicPartition]:
        return []


class ScriptedWriter(OrderWriter):
    """An OrderWriter whose transactions are `script(batch number)` instead of PostgreSQL."""

    def __init__(self, consumer: FakeConsumer, script: Script, **settings: object) -> None:
        super().__init__(
            settings=WorkerSettings(
                database_url="x",
                kafka_bootstrap="x",
                batch_max_wait_ms=5,
                retry_initial_ms=1,
                retry_max_ms=5,
                **settings,  # type: ignore[arg-type]
            ),
            consumer=cast(Consumer, consumer),
            dead_letters=cast(DeadLetters, None),
            pool=cast(InstrumentedPool, None),
            metrics=WorkerMetrics(CollectorRegistry()),
        )
        self.script = script
        self.numbers: dict[tuple[int, int], int] = {}
        self.running = 0
        self.most_running = 0

    async def _persist(self, plan: BatchPlan) -> PersistResult:
        first = (plan.orders[0].partition, plan.orders[0].offset)
        if first not in self.numbers:  # a retry keeps its batch's number
            self.numbers[first] = len(self.numbers) + 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.script(self.numbers[first])
        finally:
            self.running -= 1
        return PersistResult(len(plan.orders), 0, {}, "new")


def batch(partition: int, first: int, n: int = 2) -> list[FakeMessage]:
    return [FakeMessage(partition, first + i) for i in range(n)]


async def run_until(writer: ScriptedWriter, condition: Callable[[], bool]) -> None:
    stop = asyncio.Event()
    loop = asyncio.create_task(writer.run(stop))
    try:
        await until(condition, timeout_s=5, interval_s=0.005)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
        writer._kafka_thread.shutdown(wait=True)


async def test_a_later_batch_commits_only_after_the_earlier_one() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(0, 2)])
    second_done = asyncio.Event()

    async def script(n: int) -> None:
        if n == 1:
            await second_done.wait()  # batch 1 is still in its transaction when batch 2 is done
        else:
            second_done.set()

    writer = ScriptedWriter(consumer, script)
    await run_until(writer, lambda: len(consumer.commits) == 2)
    assert writer.most_running == 2
    assert consumer.commits == [{0: 2}, {0: 4}]


async def test_an_abandoned_batch_keeps_the_next_one_uncommitted() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(1, 0)])
    second_done = asyncio.Event()

    async def script(n: int) -> None:
        if n == 2:
            second_done.set()
            return
        raise OSError("database down")  # batch 1 retries until shutdown abandons it

    writer = ScriptedWriter(consumer, script)
    await run_until(writer, second_done.is_set)
    # Batch 2 shares no partition with batch 1, but it commits nothing either: the order of
    # commits is kept whole rather than reasoned about per partition.
    assert consumer.commits == []


async def test_shutdown_finishes_every_batch_in_hand() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(0, 2), batch(0, 4)])
    release = asyncio.Event()

    async def script(_n: int) -> None:
        await release.wait()

    writer = ScriptedWriter(consumer, script)
    stop = asyncio.Event()
    loop = asyncio.create_task(writer.run(stop))
    await until(lambda: writer.running == 2, timeout_s=5, interval_s=0.005)
    stop.set()
    release.set()
    await asyncio.wait_for(loop, 5)
    writer._kafka_thread.shutdown(wait=True)
    # the two batches in PostgreSQL commit; the third, fetched but not begun, is redelivered
    assert consumer.commits == [{0: 2}, {0: 4}]


async def test_a_pool_of_one_keeps_batches_serial() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(0, 2), batch(0, 4)])

    async def script(_n: int) -> None:
        await asyncio.sleep(0.01)

    writer = ScriptedWriter(consumer, script, pool_max_size=1)
    await run_until(writer, lambda: len(consumer.commits) == 3)
    assert writer.most_running == 1
    assert consumer.commits == [{0: 2}, {0: 4}, {0: 6}]


@pytest.mark.parametrize(("wanted", "pool", "depth"), [(2, 4, 2), (4, 2, 2), (2, 1, 1), (1, 4, 1), (0, 4, 1)])
def test_batches_in_flight_is_capped_by_the_pool(wanted: int, pool: int, depth: int) -> None:
    assert batches_in_flight(wanted, pool) == depth
