"""Doubles of the Kafka and Redis seams, for unit tests only, typed against the Protocols they stand in for.

- `FakeRoundTrips` is a `gate.redis_batch.RoundTrips`: the commands of one event-loop tick are
  answered together, by a function of the test's, as one round trip would carry them.
- `FakeConnection` is a redis-py connection to a `FakeRedisServer`, for testing the round trip
  itself (gate/redis_batch.py) below the RoundTrips seam.
- `FakeProducer` is a `gate.handoff.ProducerLike` and a `worker.dlq.ProducerLike`: it holds
  every message until the test delivers (or fails) it.
- `FakeOutboxes`, `FakeSink` and `FakeAcks` are what `gate.outbox.Relay` reads, republishes to
  and acks through (its RelaySource, RelaySink and Acks): outboxes by SKU, a SKU's shard can be
  down; what was sent, with each delivery callback; what was acked.
- `FakeConsumer` is a `worker.consumer.ConsumerLike`: it hands out scripted batches of real
  `confluent_kafka.Message`s and records every commit; `ScriptedWriter` runs the worker's loop
  over one, with each batch's PostgreSQL transaction a scripted coroutine.

Integration, e2e and chaos tests never use these: they run on the real services.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import hiredis
import redis.asyncio as aioredis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from flashgate import names
from flashgate.events import OrderAccepted, OrdersAccepted, encode
from flashgate.outbox import OutboxOrder
from gate.errors import RedisUnavailable
from gate.handoff import OnDelivered
from gate.scripts import Scripts
from tests.support.orders import order
from tests.support.poll import until
from worker.batch import BatchPlan
from worker.consumer import OrderWriter
from worker.dlq import DeadLetters
from worker.metrics import WorkerMetrics
from worker.pool import InstrumentedPool
from worker.settings import WorkerSettings
from worker.writer import PersistResult

Command = tuple[Any, ...]
Answer = Callable[[Command], Any]

_SCRIPTS = Scripts()
_SCRIPT_OF_SHA = {sha: name for name, sha in _SCRIPTS.sha.items()}


def script_of(command: Command) -> str | None:
    """The flashgate/lua script an EVALSHA runs (`names.ADMIT_SCRIPT`…), None for any other command."""
    return _SCRIPT_OF_SHA.get(command[1]) if command[0] == "EVALSHA" else None


def script_args(command: Command) -> tuple[list[Any], list[Any]]:
    """(KEYS, ARGV) of an EVALSHA."""
    keys = int(command[2])
    return list(command[3 : 3 + keys]), list(command[3 + keys :])


ADMIT_FIXED_ARGS = 3  # idempotency TTL, index TTL, SKU (gate/admission.py)
ADMIT_ARGS_PER_ORDER = 7  # fingerprint, qty, order id, user, key, idempotency field, traceparent


def admit_orders(command: Command) -> list[list[Any]]:
    """The per-order ARGV groups of an admit.lua EVALSHA, in request order."""
    argv = script_args(command)[1][ADMIT_FIXED_ARGS:]
    return [argv[i : i + ADMIT_ARGS_PER_ORDER] for i in range(0, len(argv), ADMIT_ARGS_PER_ORDER)]


def all_admitted(command: Command, *, stock_left: int = 100) -> list[Any]:
    """admit.lua's reply admitting every order of `command`: ACCEPTED, one accepted_at and outbox entry per call."""
    return [0, 1_764_547_200_000_000, "1764547200000-0", stock_left, b""] * len(admit_orders(command))


def plain_redis(command: Command) -> Any:
    """Answers the gate's scripts as an idle sale would: every order admitted, every ack deleting its entries."""
    script = script_of(command)
    if script == names.ADMIT_SCRIPT:
        return all_admitted(command)
    if script == names.OUTBOX_ACK_SCRIPT:
        return len(script_args(command)[1])
    raise AssertionError(f"plain_redis has no answer for {command[:2]}")


class FakeRoundTrips:
    """RoundTrips without Redis: the calls of one tick are answered together by `answer(command)`.

    `answer` returns the reply, or raises to fail that command with what it raised (a
    RedisUnavailable, a NoScriptError…). `ticks` holds the commands of each round trip, in order.
    """

    def __init__(self, answer: Answer = plain_redis) -> None:
        self.answer = answer
        self.ticks: list[list[Command]] = []
        self.breaker_open = False
        self._queue: list[tuple[Command, asyncio.Future[Any]]] = []

    @property
    def commands(self) -> list[Command]:
        return [command for tick in self.ticks for command in tick]

    def scripts(self, name: str) -> list[Command]:
        """Every EVALSHA of script `name` sent so far."""
        return [c for c in self.commands if script_of(c) == name]

    def call(self, *command: Any, route: str | None = None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((command, fut))
        return fut

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        self.ticks.append([command for command, _ in batch])
        for command, fut in batch:
            try:
                reply = self.answer(command)
            except Exception as e:
                fut.set_exception(e)
            else:
                fut.set_result(reply)

    async def close(self) -> None:
        pass


class FakeRedisServer:
    """The far end of FakeConnection: answers each command (its arguments, as bytes) with `answer`.

    `answer` returns the reply or raises a redis-py error (ResponseError, NoScriptError…) that
    stands for an error reply. `broken` makes the next write fail (a dropped connection); `hold`,
    while unset, keeps every reply back (a Redis that stopped answering). `round_trips` holds the
    commands of each write, in order.
    """

    def __init__(self, answer: Callable[[list[bytes]], Any]) -> None:
        self.answer = answer
        self.round_trips: list[list[list[bytes]]] = []
        self.broken = False
        self.hold = asyncio.Event()
        self.hold.set()
        self.disconnects = 0


class FakeConnection(Connection):
    """A redis-py connection to a FakeRedisServer (given as the pool's `server` connection kwarg)."""

    def __init__(self, *, server: FakeRedisServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = server
        self._replies: deque[list[bytes]] = deque()

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        if self.server.broken:
            self.server.broken = False
            raise RedisConnectionError("connection reset by peer")
        reader = hiredis.Reader()
        for packed in [command] if isinstance(command, (bytes, str)) else command:
            reader.feed(packed)
        commands: list[list[bytes]] = []
        while (parsed := reader.gets()) is not False:
            commands.append(parsed)
        self.server.round_trips.append(commands)
        self._replies.extend(commands)

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - redis-py's signature
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        await self.server.hold.wait()
        return self.server.answer(self._replies.popleft())

    async def disconnect(
        self,
        nowait: bool = False,
        error: Exception | None = None,
        failure_count: int | None = None,
        health_check_failed: bool = False,
    ) -> None:
        self._replies.clear()
        self.server.disconnects += 1


def fake_redis(server: FakeRedisServer) -> aioredis.Redis:
    """A redis-py client whose connections (and so a RedisBatcher's) talk to `server`."""
    pool = aioredis.ConnectionPool(connection_class=FakeConnection, server=server)
    return aioredis.Redis(connection_pool=pool)


class FakeOutboxes:
    """Outboxes by SKU, each a list of entries' orders (a `gate.outbox.RelaySource`); a SKU in `down` answers as a
    dead Redis Cluster shard would."""

    def __init__(self, outboxes: dict[str, list[list[OutboxOrder]]], down: set[str] | None = None) -> None:
        self.outboxes, self.down = outboxes, down or set()

    async def sale_skus(self) -> set[str]:
        return set(self.outboxes)

    async def lengths(self, skus: Sequence[str]) -> list[int | RedisUnavailable]:
        return [RedisUnavailable() if sku in self.down else len(self.outboxes[sku]) for sku in skus]

    async def claim(
        self, sku: str, *, relay: str, min_age_ms: int, lease_ms: int, cursor: str, count: int
    ) -> tuple[str, list[list[OutboxOrder]]]:
        if sku in self.down:
            raise RedisUnavailable()
        return "0-0", self.outboxes[sku]


@dataclass
class FakeSink:
    """A `gate.outbox.RelaySink` that keeps what it is sent: events, traces and delivery callbacks.

    `sent` and `traces` are per order, `callbacks` and `messages` (orders per message) per message:
    with `batched`, one version-2 message per entry, else one version-1 message per order. The
    order ids in `producing` are in flight, as if their own gate were still producing them.
    """

    batched: bool = False
    sent: list[OrderAccepted] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    callbacks: list[OnDelivered] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    producing: set[str] = field(default_factory=set)

    def in_flight(self, order_id: str) -> bool:
        return order_id in self.producing

    def send(self, event: OrderAccepted, on_delivered: OnDelivered, *, trace: str = "") -> None:
        self.sent.append(event)
        self.traces.append(trace)
        self.callbacks.append(on_delivered)
        self.messages.append(1)

    def send_batch(self, batch: OrdersAccepted, on_delivered: OnDelivered) -> None:
        self.sent.extend(batch.events())
        self.traces.extend(o.traceparent for o in batch.orders)
        self.callbacks.append(on_delivered)
        self.messages.append(len(batch.orders))


@dataclass
class FakeAcks:
    """A `gate.outbox.Acks` that records each (sku, stream id) acked."""

    acked: list[tuple[str, str]] = field(default_factory=list)

    def ack(self, sku: str, stream_id: str) -> asyncio.Future[bool]:
        self.acked.append((sku, stream_id))
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        done.set_result(True)
        return done


@dataclass
class Produced:
    """One message handed to a FakeProducer, with its delivery callback."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: Any
    on_delivery: Callable[[Any, Any], None] | None


class FakeProducer:
    """A producer that holds each message until `deliver()`; `refuse` makes `produce` raise BufferError.

    `flush` delivers what is held: failed with _PURGE_QUEUE after `purge()` (as librdkafka does),
    else as `flush_error` says (None: acknowledged).
    """

    def __init__(self, _config: dict[str, Any] | None = None) -> None:
        self.pending: list[Produced] = []
        self.sent: list[Produced] = []  # every message ever produced, in order
        self.refuse = False
        self.purged = False
        self.flush_error: KafkaError | None = None

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: Callable[[Any, Any], None] | None = None,
        headers: Any = None,
    ) -> None:
        if self.refuse:
            raise BufferError("queue full")
        message = Produced(topic, value, key, headers, on_delivery)
        self.pending.append(message)
        self.sent.append(message)

    def deliver(self, err: KafkaError | None = None, *, first: int | None = None) -> None:
        """Report the first `first` held messages (all by default): acknowledged, or failed with `err`."""
        n = len(self.pending) if first is None else first
        done, self.pending = self.pending[:n], self.pending[n:]
        for message in done:
            if message.on_delivery is not None:
                message.on_delivery(err, None)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def purge(self) -> None:
        self.purged = True

    def flush(self, timeout: float = -1) -> int:
        self.deliver(KafkaError(KafkaError._PURGE_QUEUE, "purged") if self.purged else self.flush_error)
        return 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        return None


def message(
    partition: int, offset: int, value: bytes | None, *, topic: str = "orders", error: KafkaError | None = None
) -> Message:
    """A consumed message as librdkafka hands it out."""
    return Message(topic=topic, partition=partition, offset=offset, value=value, error=error)


class FakeConsumer:
    """Hands out the scripted batches, then nothing (after waiting its timeout); records every commit.

    `commit_errors` are raised, one per commit call, before commits succeed again. `assigned` and
    `high` (partition → high watermark) feed the lag gauge.
    """

    def __init__(self, batches: Sequence[list[Message]] = ()) -> None:
        self.batches: deque[list[Message]] = deque(batches)
        self.commits: list[dict[int, int]] = []
        self.commit_errors: deque[KafkaException] = deque()
        self.assigned: list[TopicPartition] = []
        self.high: dict[int, int] = {}
        self.on_revoke: Callable[[Consumer, list[TopicPartition]], None] | None = None
        self.closed = False

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[[Consumer, list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[Consumer, list[TopicPartition]], None] | None = None,
        on_lost: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    ) -> None:
        self.on_revoke = on_revoke

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        if self.batches:
            return self.batches.popleft()
        time.sleep(max(timeout, 0))
        return []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[False]) -> list[TopicPartition]:
        if self.commit_errors:
            raise self.commit_errors.popleft()
        self.commits.append({tp.partition: tp.offset for tp in offsets})
        return offsets

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self._committed(tp.partition)) for tp in partitions]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return 0, self.high.get(partition.partition, 0)

    def close(self) -> None:
        self.closed = True

    def _committed(self, partition: int) -> int:
        offsets = [c[partition] for c in self.commits if partition in c]
        return offsets[-1] if offsets else -1001


# --- the worker's loop, with PostgreSQL scripted -------------------------------------------------

Script = Callable[[int], Awaitable[None]]  # batch number (1, 2, … in fetch order) -> its "transaction"


async def _committed(_n: int) -> None:
    return None


class ScriptedWriter(OrderWriter):
    """An OrderWriter over a FakeConsumer whose transactions are `script(batch number)` instead of
    PostgreSQL; its dead letters go to `dlq` (a FakeProducer that acknowledges on flush)."""

    def __init__(self, consumer: FakeConsumer, script: Script = _committed, **settings: object) -> None:
        self.dlq = FakeProducer()
        super().__init__(
            settings=WorkerSettings(
                database_url="x",
                kafka_bootstrap="x",
                batch_max_wait_ms=5,
                retry_initial_ms=1,
                retry_max_ms=5,
                **settings,  # type: ignore[arg-type]
            ),
            consumer=consumer,
            dead_letters=DeadLetters(self.dlq, "orders.dlq", timeout_s=1),
            pool=cast(InstrumentedPool, None),  # never used: _persist is the script
            metrics=WorkerMetrics(CollectorRegistry()),
        )
        self.script = script
        self.numbers: dict[tuple[int, int], int] = {}
        self.running = 0
        self.most_running = 0

    async def _persist(self, plan: BatchPlan) -> PersistResult:
        if not plan.orders:
            return PersistResult(0, 0, {}, "new")
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


def batch(partition: int, first: int, n: int = 2) -> list[Message]:
    """`n` valid orders at offsets `first`… of `partition`."""
    return [message(partition, first + i, encode(order())) for i in range(n)]


@asynccontextmanager
async def running(writer: ScriptedWriter) -> AsyncIterator[None]:
    """The writer's loop runs inside the block; stopped, and waited for, at its end."""
    stop = asyncio.Event()
    loop = asyncio.create_task(writer.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
        writer._kafka_thread.shutdown(wait=True)


async def run_until(writer: ScriptedWriter, condition: Callable[[], bool]) -> None:
    """Run the writer's loop until `condition`, then stop it and wait for it to finish."""
    async with running(writer):
        await until(condition, timeout_s=5, interval_s=0.005)
