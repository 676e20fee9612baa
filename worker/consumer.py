"""The worker's loop: consume a batch, dead-letter poison, persist in one transaction, then commit.

Offsets move only after the database commit (and, for poison, after the DLQ acknowledged), so a
crash at any point redelivers work that the idempotent insert then skips: at-least-once
transport, exactly-once effect. Every consumer call runs on one dedicated thread, so librdkafka
calls never interleave and the event loop never blocks on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from flashgate import tracecontext
from flashgate.otel import Tracing
from worker.batch import BatchPlan, Incoming, batches_in_flight, commit_positions, plan_batch, traced
from worker.dlq import DeadLetters
from worker.metrics import WorkerMetrics
from worker.pool import InstrumentedPool
from worker.settings import WorkerSettings
from worker.writer import PersistResult, persist

T = TypeVar("T")


def _traceparent(m: Message) -> bytes | None:
    """A consumed message's `traceparent` header, if it has one (librdkafka gives a list of pairs)."""
    headers = m.headers()
    if not isinstance(headers, list):
        return None
    for name, value in headers:
        if name == tracecontext.HEADER and isinstance(value, bytes):
            return value
    return None


Fetched = tuple[list[Incoming], BatchPlan]
log = logging.getLogger("flashgate.worker")

# Commit failures that mean "these partitions are no longer yours": the new owner will
# redeliver from the last commit and the idempotent insert skips what we already wrote.
_LOST_OWNERSHIP = {
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError._ASSIGNMENT_LOST,
}


class ConsumerLike(Protocol):
    """What the writer uses of confluent_kafka.Consumer (a double stands in for it in unit tests)."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[[Consumer, list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[Consumer, list[TopicPartition]], None] | None = None,
        on_lost: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    ) -> None: ...
    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[False]) -> list[TopicPartition]: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]: ...
    def close(self) -> None: ...


class Abandoned(Exception):
    """Shutdown was requested while a batch was still retrying; its offsets stay uncommitted."""


class OrderWriter:
    """Consumes `settings.topic` in batches and records the orders in PostgreSQL."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        consumer: ConsumerLike,
        dead_letters: DeadLetters,
        pool: InstrumentedPool,
        metrics: WorkerMetrics,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = tracing  # OpenTelemetry export: a span per batch, linked to its orders' spans
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.pool = pool
        self.metrics = metrics
        self._kafka_thread = ThreadPoolExecutor(1, thread_name_prefix="kafka-consumer")
        self._uncommitted: dict[tuple[str, int], int] = {}  # touched only on the Kafka thread
        self._lag_checked = 0.0

    def subscribe(self) -> None:
        self.consumer.subscribe(
            [self.settings.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set; the batches in hand are finished (or abandoned) first.

        Up to `batches_in_flight` batches are in PostgreSQL at once, each in its own transaction
        on its own connection, while the next one is fetched and decoded on the Kafka thread.
        Batches still commit their offsets one after another in fetch order: a batch commits
        only once every earlier batch has committed, so no commit ever covers an offset whose
        order is not yet in the database (partition offsets only grow from batch to batch).
        Two transactions on the same SKU serialise on its product row lock, taken in sorted
        order, so they cannot deadlock.
        """
        depth = batches_in_flight(self.settings.batches_in_flight, self.settings.pool_max_size)
        in_flight: deque[asyncio.Task[None]] = deque()
        fetch: asyncio.Future[Fetched] | None = self._fetch()
        abandoned = False
        while fetch is not None:
            messages, plan = await fetch
            fetch = None if stop.is_set() else self._fetch()
            # After a stop, no new transaction begins: a batch fetched but not begun is redelivered.
            if messages and not stop.is_set():
                previous = in_flight[-1] if in_flight else None
                in_flight.append(asyncio.create_task(self._handle(messages, plan, stop, after=previous)))
            # Wait for the oldest batch when the pipeline is full; reap finished ones meanwhile.
            while in_flight and (len(in_flight) >= depth or in_flight[0].done()):
                if not await self._finish(in_flight.popleft()):
                    abandoned = True
            if abandoned:
                break
            if time.monotonic() - self._lag_checked > 1.0:
                await self._on_kafka_thread(self._update_lag)
        while in_flight:
            await self._finish(in_flight.popleft())
        if fetch is not None:
            await fetch  # fetched but never handled: its offsets stay uncommitted, so it is redelivered

    def _fetch(self) -> asyncio.Future[Fetched]:
        return asyncio.ensure_future(self._on_kafka_thread(self._consume))

    async def _finish(self, task: asyncio.Task[None]) -> bool:
        """Wait for one batch; False if it was abandoned at shutdown (its offsets stay uncommitted)."""
        try:
            await task
        except Abandoned as e:
            log.info("shutdown during retries (%s): batch left uncommitted for redelivery", e)
            return False
        return True

    async def close(self) -> None:
        """Leave the group (commits nothing new: everything done is already committed)."""
        await self._on_kafka_thread(self.consumer.close)
        self._kafka_thread.shutdown(wait=True)

    async def _handle(
        self, messages: list[Incoming], plan: BatchPlan, stop: asyncio.Event, *, after: asyncio.Task[None] | None
    ) -> None:
        """Dead-letter, persist, then commit once `after` (the previous batch) has committed.

        Raises Abandoned, committing nothing, if shutdown comes while retrying or if `after`
        was abandoned: committing this batch's offsets would then skip the earlier batch's
        uncommitted orders in any partition the two share.
        """
        began = time.perf_counter()
        span = None if self.tracing is None else self.tracing.start_batch(plan.traceparents, len(messages))
        try:
            result = await self._dead_letter_and_persist(plan, stop)
        finally:
            if span is not None:
                span.end()
        if after is not None:
            try:
                await asyncio.shield(after)
            except Abandoned as e:
                raise Abandoned("an earlier batch was abandoned") from e
        positions = commit_positions(messages)
        await self._retry("commit", lambda: self._on_kafka_thread(self._commit, positions), stop)
        took = time.perf_counter() - began
        self._observe(len(messages), len(plan.poison), plan.redelivered, result, took, traced(plan))

    async def _dead_letter_and_persist(self, plan: BatchPlan, stop: asyncio.Event) -> PersistResult:
        if plan.poison:
            await self._retry("dlq", lambda: self._on_thread(self.dead_letters.send, plan.poison), stop)
        return await self._retry("db", lambda: self._persist(plan), stop)

    async def _persist(self, plan: BatchPlan) -> PersistResult:
        async with self.pool.acquire() as conn:
            return await persist(conn, plan.orders)

    def _observe(
        self, count: int, poison: int, redelivered: int, result: PersistResult, took: float, traces: str
    ) -> None:
        m = self.metrics
        m.batch_size.observe(count)
        m.batch_seconds.observe(took)
        m.inserted.inc(result.inserted)
        m.duplicates.inc(result.duplicates + redelivered)
        m.dlq.inc(poison)
        for reason, n in result.refused.items():
            m.refused.labels(reason=reason).inc(n)
        if result.refused_total:
            log.error("refused %d orders the stock cannot cover: %s", result.refused_total, result.refused)
        log.info(
            "batch messages=%d inserted=%d duplicates=%d refused=%d dlq=%d took_ms=%.1f%s",
            count, result.inserted, result.duplicates + redelivered, result.refused_total, poison, took * 1000, traces,
        )  # fmt: skip

    async def _retry(self, stage: str, step: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T:
        """Run `step` until it succeeds, backing off on failure; Abandoned if `stop` is set meanwhile."""
        delay_ms = float(self.settings.retry_initial_ms)
        failures = 0
        while True:
            try:
                value = await step()
            except Exception as e:
                # Any failure is retried: skipping a batch would lose orders (I2). Unexpected
                # errors keep the partition stuck, which the lag alert makes visible.
                failures += 1
                self.metrics.retries.labels(stage=stage).inc()
                if failures == 1:
                    log.warning("%s failed, retrying with backoff: %s: %s", stage, type(e).__name__, e)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay_ms / 1000 * random.uniform(0.5, 1.0))  # noqa: S311
                except TimeoutError:
                    delay_ms = min(delay_ms * 2, self.settings.retry_max_ms)
                    continue
                raise Abandoned(stage) from e
            if failures:
                log.warning("%s recovered after %d retries", stage, failures)
            return value

    # --- everything below runs on the Kafka thread -------------------------------------------

    def _consume(self) -> Fetched:
        raw = self.consumer.consume(
            num_messages=self.settings.batch_max_rows, timeout=self.settings.batch_max_wait_ms / 1000
        )
        out: list[Incoming] = []
        for m in raw:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err.str())
                continue
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None
            assert partition is not None
            assert offset is not None
            out.append(Incoming(topic, partition, offset, m.key(), m.value(), _traceparent(m)))
        return out, plan_batch(out)

    def _commit(self, positions: dict[tuple[str, int], int]) -> None:
        self._uncommitted.update(positions)
        self._commit_uncommitted()

    def _commit_uncommitted(self, only: set[tuple[str, int]] | None = None) -> None:
        todo = {k: v for k, v in self._uncommitted.items() if only is None or k in only}
        if not todo:
            return
        began = time.perf_counter()
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in todo.items()], asynchronous=False)
        except KafkaException as e:
            code = e.args[0].code()
            if code == KafkaError._NO_OFFSET:
                pass
            elif code in _LOST_OWNERSHIP:
                log.warning("commit refused after a rebalance (%s); the new owner redelivers", e.args[0].str())
            else:
                raise
        self.metrics.commit_seconds.observe(time.perf_counter() - began)
        for key in todo:
            self._uncommitted.pop(key, None)

    def _update_lag(self) -> None:
        self._lag_checked = time.monotonic()
        assigned = self.consumer.assignment()
        if not assigned:
            return
        for tp in self.consumer.position(assigned):
            watermarks = self.consumer.get_watermark_offsets(tp, cached=True)
            if watermarks is None or tp.offset < 0:
                continue
            self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, watermarks[1] - tp.offset))

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", sorted(tp.partition for tp in partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", sorted(tp.partition for tp in partitions))
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self._commit_uncommitted(only=keys)
        self._forget(partitions)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning(
            "lost %s; their uncommitted work is redelivered elsewhere", sorted(tp.partition for tp in partitions)
        )
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._uncommitted.pop((tp.topic, tp.partition), None)
            with contextlib.suppress(KeyError):  # never observed for this partition
                self.metrics.lag.remove(tp.topic, str(tp.partition))

    async def _on_kafka_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._kafka_thread, fn, *args)

    async def _on_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
