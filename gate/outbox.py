"""The outbox on the gate's side: everything that reads or deletes `outbox:{sku}` entries after admit.lua wrote them.

    admit.lua XADDs one entry per call, holding the orders it admitted (gate/orders.py)
        │
        ▼ produce_entry: one message for the entry's orders (Handoff.send_batch) ─▶ delivery report, on the loop
    EntryDelivery: once every order of the entry is in Kafka ─▶ OutboxAcker
    OutboxAcker: outbox_ack.lua (XDEL) of the tick's delivered entries, one call per SKU
        ▲
        │ delivered
    Relay, every interval in every gate process (and `flashgate relay`):
        XLEN of every known outbox in one round trip ─▶ outbox_claim.lua on the non-empty ones
        (the SKU's lease, entries older than stale_ms) ─▶ produce_entry ─▶ EntryDelivery

An entry is deleted only when all of its orders are delivered: one failed order keeps the whole
entry, and a relay republishes all of its orders later (the worker drops the duplicates).

`OutboxClient` makes the Redis calls (the outbox scripts, XLEN, the sale registry); the entry's
format is `flashgate.outbox`, shared with the reconciler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from flashgate import names
from flashgate.events import BATCH_SCHEMA_VERSION, SCHEMA_VERSION, BatchedOrder, OrderAccepted, OrdersAccepted
from flashgate.outbox import OutboxOrder, decode_entry
from gate.errors import GateError, HandoffError, RedisUnavailable
from gate.handoff import OnDelivered
from gate.metrics import GateMetrics
from gate.redis_batch import RoundTrips
from gate.scripts import Scripts

log = logging.getLogger(__name__)


class OutboxClient:
    """The outbox's Redis calls; every call shares the current tick's round trip (gate/redis_batch.py)."""

    def __init__(self, batcher: RoundTrips, scripts: Scripts) -> None:
        self._batcher = batcher
        self._scripts = scripts

    async def ack(self, sku: str, stream_ids: Sequence[str]) -> int:
        """outbox_ack.lua: forget delivered entries; returns how many this call deleted."""
        return int(
            await self._scripts.call(self._batcher, names.OUTBOX_ACK_SCRIPT, (names.outbox_key(sku),), stream_ids)
        )

    async def lengths(self, skus: Sequence[str]) -> list[int | RedisUnavailable]:
        """XLEN of each SKU's outbox, all in this tick's round trip(s); a SKU whose Redis (its shard, on
        a cluster) did not answer has its RedisUnavailable in its place. Any other error is raised."""
        calls: list[asyncio.Future[Any]] = []
        for sku in skus:
            try:
                calls.append(self._batcher.call("XLEN", names.outbox_key(sku)))
            except RedisUnavailable as e:  # that node's breaker is open: failed without a round trip
                failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed.set_exception(e)
                calls.append(failed)
        lengths: list[int | RedisUnavailable] = []
        for reply in await asyncio.gather(*calls, return_exceptions=True):  # every failure retrieved
            if isinstance(reply, RedisUnavailable):
                lengths.append(reply)
            elif isinstance(reply, BaseException):
                raise reply
            else:
                lengths.append(int(reply))
        return lengths

    async def claim(
        self, sku: str, *, relay: str, min_age_ms: int, lease_ms: int, cursor: str, count: int
    ) -> tuple[str, list[list[OutboxOrder]]]:
        """outbox_claim.lua: entries admitted more than `min_age_ms` ago → (next cursor, their orders by entry).

        Nothing unless this relay holds (or now takes) the SKU's relay lease for `lease_ms`.
        """
        keys = (names.outbox_key(sku), names.relay_lease_key(sku))
        raw = await self._scripts.call(
            self._batcher, names.OUTBOX_CLAIM_SCRIPT, keys, (relay, min_age_ms, cursor, count, lease_ms)
        )
        entries = []
        for sid, fields in raw[1]:
            try:
                entries.append(decode_entry(sid, fields))
            except (KeyError, ValueError):
                log.error("outbox:{%s} entry %s is malformed, left in place: %r", sku, sid, fields)
        return str(raw[0]), entries

    async def sale_skus(self) -> set[str]:
        """Every SKU of the sale registry (`names.SALE_REGISTRY`): where outboxes can be; never a SCAN."""
        return set(await self._batcher.call("SMEMBERS", names.SALE_REGISTRY))


def accepted_at(us: int) -> datetime:
    """Redis server time in µs → timezone-aware UTC datetime (exact to the µs)."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def event_of(sku: str, order: OutboxOrder) -> OrderAccepted:
    """The OrderAccepted an outboxed order stands for (the same bytes the gate first produced)."""
    return OrderAccepted(
        schema_version=SCHEMA_VERSION,
        order_id=uuid.UUID(order.order_id),
        sku=sku,
        user_id=order.user,
        qty=order.qty,
        idempotency_key=order.key,
        accepted_at=accepted_at(order.accepted_at_us),
    )


def batch_of(sku: str, orders: Sequence[OutboxOrder]) -> OrdersAccepted:
    """The version-2 message of one outbox entry's orders (they share its accepted_at)."""
    return OrdersAccepted(
        schema_version=BATCH_SCHEMA_VERSION,
        sku=sku,
        accepted_at=accepted_at(orders[0].accepted_at_us),
        orders=[BatchedOrder(uuid.UUID(o.order_id), o.user, o.qty, o.key, o.trace) for o in orders],
    )


def produce_entry(
    handoff: RelaySink,
    acks: Acks,
    sku: str,
    orders: Sequence[OutboxOrder],
    on_done: Callable[[bool], None] | None = None,
) -> None:
    """Hand one outbox entry's orders to Kafka; the entry is acked once all are delivered (EntryDelivery).

    One version-2 message for the whole entry, or with a version-1 handoff one message per order.
    Raises HandoffError when the producer refuses a message: the entry then stays in the outbox for
    a relay, and `on_done(False)` has run.
    """
    if handoff.batched:
        delivery = EntryDelivery(acks, sku, orders[0].stream_id, 1, on_done)
        try:
            handoff.send_batch(batch_of(sku, orders), delivery.delivered)
        except HandoffError:
            delivery.refused()
            raise
        return
    delivery = EntryDelivery(acks, sku, orders[0].stream_id, len(orders), on_done)
    for order in orders:
        try:
            handoff.send(event_of(sku, order), delivery.delivered, trace=order.trace)
        except HandoffError:
            delivery.refused()
            raise


class OutboxAcker:
    """`ack(sku, stream_id)` after Kafka delivery; one outbox_ack.lua call per SKU per event-loop tick.

    `ack` returns a future that completes when the SKU's call is done: True once the entry is gone
    from the outbox (deleted now, or already), False if the call failed. A failed ack is logged and
    dropped: the entry stays pending and a relay republishes it later, a harmless duplicate (the
    worker dedups by order id); until then the order reads `queued`, so its answer says so too.
    """

    def __init__(self, outbox: OutboxClient) -> None:
        self._outbox = outbox
        self._pending: dict[str, tuple[list[str], asyncio.Future[bool]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.acked = 0

    def ack(self, sku: str, stream_id: str) -> asyncio.Future[bool]:
        pending = self._pending.get(sku)
        if pending is None:
            loop = asyncio.get_running_loop()
            if not self._pending:
                loop.call_soon(self._flush)
            pending = self._pending[sku] = ([], loop.create_future())
        pending[0].append(stream_id)
        return pending[1]

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        loop = asyncio.get_running_loop()
        for sku, (ids, done) in pending.items():
            task = loop.create_task(self._ack(sku, ids, done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _ack(self, sku: str, ids: list[str], done: asyncio.Future[bool]) -> None:
        ok = False
        try:
            deleted = await self._outbox.ack(sku, ids)  # not `+= await`: that reads `acked` before the await
            self.acked += deleted
            ok = True
        except Exception as e:  # Redis down, an error reply: the relay covers both
            log.warning("outbox ack of %d entries of %s failed, the relay will republish them: %s", len(ids), sku, e)
        finally:
            done.set_result(ok)

    async def drain(self) -> None:
        """Wait for acks in flight (shutdown)."""
        await asyncio.sleep(0)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class EntryDelivery:
    """The messages of one outbox entry on their way to Kafka; the entry is acked once every one is delivered.

    `delivered` is each message's delivery callback (one message per order, or one for the whole
    entry); `refused()` tells of a message the producer would not take. `on_done(acked)` runs
    once: True when the ack deleted the entry (or found it gone), False as soon as one message
    failed or was refused, or when the ack failed. A failed entry stays
    in the outbox and a relay republishes all of its orders later, the delivered ones too (the
    worker drops those duplicates): deleting it earlier would lose the orders not yet in Kafka.
    """

    def __init__(
        self, acks: Acks, sku: str, stream_id: str, messages: int, on_done: Callable[[bool], None] | None = None
    ) -> None:
        self._acks = acks
        self._sku = sku
        self._stream_id = stream_id
        self._left = messages
        self._on_done = on_done
        self._failed = False

    def delivered(self, err: HandoffError | None) -> None:
        if err is not None:
            self.refused()
            return
        self._left -= 1
        if self._left or self._failed:
            return
        done = self._acks.ack(self._sku, self._stream_id)
        on_done = self._on_done
        if on_done is not None:
            done.add_done_callback(lambda acked: on_done(acked.result()))

    def refused(self) -> None:
        if self._failed:
            return
        self._failed = True
        if self._on_done is not None:
            self._on_done(False)


class RelaySource(Protocol):
    """What a relay reads of the outboxes: OutboxClient (a fake in unit tests)."""

    async def sale_skus(self) -> set[str]: ...
    async def lengths(self, skus: Sequence[str]) -> list[int | RedisUnavailable]: ...
    async def claim(
        self, sku: str, *, relay: str, min_age_ms: int, lease_ms: int, cursor: str, count: int
    ) -> tuple[str, list[list[OutboxOrder]]]: ...


class RelaySink(Protocol):
    """Where outbox entries are produced: gate.handoff.Handoff (a fake in unit tests)."""

    batched: bool  # one version-2 message per entry (send_batch), else one version-1 message per order

    def in_flight(self, order_id: str) -> bool: ...
    def send(self, event: OrderAccepted, on_delivered: OnDelivered, *, trace: str = "") -> None: ...
    def send_batch(self, batch: OrdersAccepted, on_delivered: OnDelivered) -> None: ...


class Acks(Protocol):
    """What a relay tells of a delivered entry: OutboxAcker (a fake in unit tests)."""

    def ack(self, sku: str, stream_id: str) -> asyncio.Future[bool]: ...


class Relay:
    """`await relay.tick()` republishes what is stale now; `run()` ticks every `interval_s`.

    SKUs come from this process's admissions and, unless `discover_s` is 0, from the sale
    registry every `discover_s` (so a relay also covers the outboxes of crashed gates). The
    registry is one SMEMBERS: discovery never scans the keyspace. The registry keeps every SKU
    ever put on sale, so a tick first asks the length of every known outbox in one round trip
    and claims only from those that hold entries: an idle relay costs one round trip per tick,
    not one script call per SKU ever sold.
    """

    def __init__(
        self,
        outbox: RelaySource,
        handoff: RelaySink,
        acker: Acks,
        *,
        metrics: GateMetrics,
        stale_ms: int,
        batch: int,
        discover_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._metrics = metrics
        self._handoff = handoff
        self._acker = acker
        self._stale_ms = stale_ms
        self._batch = batch
        self._discover_s = discover_s
        self._clock = clock
        self._discovered_at: float | None = None
        self.skus: set[str] = set()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # the lease holder's name
        self.republished = 0

    def note_sku(self, sku: str) -> None:
        """An SKU this process admitted for: watch its outbox without waiting for discovery."""
        self.skus.add(sku)

    async def tick(self) -> int:
        """One pass over every known outbox; returns how many orders were handed to the producer.

        A SKU whose Redis cannot answer is passed over, and the others are relayed all the same (on a
        Redis Cluster one shard down must not hold up the rest); the tick then raises its error.
        """
        try:
            sent, failed = await self._tick()
        except Exception:
            self._metrics.relay_ticks["failed"] += 1
            raise
        self._metrics.events["relay_republished"] += sent
        if failed is not None:
            self._metrics.relay_ticks["failed"] += 1
            raise failed
        self._metrics.relay_ticks["ok"] += 1
        return sent

    async def _tick(self) -> tuple[int, RedisUnavailable | None]:
        now = self._clock()
        due = self._discovered_at is None or now - self._discovered_at >= self._discover_s
        if self._discover_s > 0 and due:
            self.skus.update(await self._outbox.sale_skus())
            self._discovered_at = now
        skus = sorted(self.skus)
        sent, failed = 0, None
        for sku, length in zip(skus, await self._outbox.lengths(skus), strict=True):
            try:
                if isinstance(length, RedisUnavailable):
                    raise length  # this SKU's Redis (its shard, on a cluster) did not answer
                if length:
                    sent += await self._relay_sku(sku)
            except RedisUnavailable as e:
                failed = failed or e
        self.republished += sent
        if sent:
            log.info("relay republished %d outboxed orders", sent)
        return sent, failed

    async def _relay_sku(self, sku: str) -> int:
        sent, cursor = 0, "0-0"
        while True:
            cursor, entries = await self._outbox.claim(
                sku,
                relay=self.name,
                min_age_ms=self._stale_ms,
                lease_ms=self._stale_ms,
                cursor=cursor,
                count=self._batch,
            )
            for orders in entries:
                # An order its own gate is still producing: that gate acks the entry (or leaves it
                # for a later tick); sending the others now could not delete it anyway.
                if any(self._handoff.in_flight(o.order_id) for o in orders):
                    continue
                try:
                    produce_entry(self._handoff, self._acker, sku, orders)
                except HandoffError as e:
                    log.warning("relay: producer refused a message, next tick retries: %s", e)
                    return sent
                sent += len(orders)
            if cursor == "0-0":
                return sent

    async def run(self, interval_s: float) -> None:
        """Tick forever; a failed tick (Redis down) is logged and retried next interval."""
        while True:
            try:
                await self.tick()
            except (GateError, OSError) as e:
                log.warning("relay tick failed: %s", e)
            except Exception:
                log.exception("relay tick crashed; retrying next interval")
            await asyncio.sleep(interval_s)
