"""Pure batch decisions: which messages are orders, which are poison, which orders fit the stock.

No I/O and no clients here; `consumer.py` gathers the inputs and applies the results.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import msgspec

from flashgate import tracecontext
from flashgate.events import EventDecodeError, OrdersAccepted, decode_many


# Incoming and OrderRow are built once per message: msgspec Structs cost ~0.3 µs to build where
# a frozen dataclass costs ~3 µs (measured at 2,000 messages per batch), a tenth of the
# worker's CPU per order.
class Incoming(msgspec.Struct, frozen=True):
    """One Kafka message as the worker sees it (value may be None for a tombstone)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    traceparent: bytes | None = None  # its `traceparent` header, if it has one


class OrderRow(msgspec.Struct, frozen=True):
    """An order ready for the `orders` table."""

    order_id: uuid.UUID
    sku: str
    user_id: str
    qty: int
    idempotency_key: str
    accepted_at: datetime
    partition: int
    offset: int
    trace_id: uuid.UUID | None = None  # from the message's traceparent; None when it came without one


@dataclass(frozen=True)
class Poison:
    """A message that can never be persisted, with the reason for the DLQ headers."""

    message: Incoming
    error: str


@dataclass(frozen=True)
class BatchPlan:
    orders: list[OrderRow]
    poison: list[Poison]
    redelivered: int  # copies of an order id already seen earlier in this batch
    traceparents: list[str | bytes]  # of the orders that came with one (its header, or inside a version-2 message)


def plan_batch(messages: Iterable[Incoming]) -> BatchPlan:
    """Decode every message; keep the first copy of each order id, mark the undecodable as poison.

    A version-2 message holds the orders of one admission call: each becomes a row of the message's
    partition and offset, with its own trace; a version-1 message's trace is its header.
    """
    orders: list[OrderRow] = []
    poison: list[Poison] = []
    seen: set[uuid.UUID] = set()
    redelivered = 0
    traceparents: list[str | bytes] = []
    messages = list(messages)
    # One call for the batch: `decode_many` has `decode`'s verdicts at less cost per message.
    decoded = iter(decode_many([m.value for m in messages if m.value is not None]))
    for msg in messages:
        if msg.value is None:
            poison.append(Poison(msg, "empty message value"))
            continue
        event = next(decoded)
        if isinstance(event, EventDecodeError):
            poison.append(Poison(msg, f"{type(event).__name__}: {event}"))
            continue
        items: list[tuple[uuid.UUID, str, int, str, str | bytes | None]]
        if isinstance(event, OrdersAccepted):
            items = [(o.order_id, o.user_id, o.qty, o.idempotency_key, o.traceparent or None) for o in event.orders]
        else:
            items = [(event.order_id, event.user_id, event.qty, event.idempotency_key, msg.traceparent)]
        for order_id, user_id, qty, key, trace in items:
            if trace:
                traceparents.append(trace)
            if order_id in seen:
                redelivered += 1
                continue
            seen.add(order_id)
            orders.append(
                OrderRow(
                    order_id=order_id,
                    sku=event.sku,
                    user_id=user_id,
                    qty=qty,
                    idempotency_key=key,
                    accepted_at=event.accepted_at,
                    partition=msg.partition,
                    offset=msg.offset,
                    trace_id=None if trace is None else tracecontext.trace_id(trace),
                )
            )
    return BatchPlan(orders=orders, poison=poison, redelivered=redelivered, traceparents=traceparents)


TRACES_LOGGED = 10  # trace ids a batch line names at most


def traced(plan: BatchPlan) -> str:
    """The batch line's ` traces=<id>,…` for the batch's orders that came with a trace context ("" if none).

    Trace ids in W3C form (32 hex digits), at most TRACES_LOGGED, then `+N` for the rest.
    """
    ids = [o.trace_id.hex for o in plan.orders if o.trace_id is not None]
    if not ids:
        return ""
    more = len(ids) - TRACES_LOGGED
    return " traces=" + ",".join(ids[:TRACES_LOGGED]) + (f",+{more}" if more > 0 else "")


@dataclass(frozen=True)
class Admission:
    """What the database transaction should do with a batch's new orders."""

    insert: list[OrderRow]
    refuse: list[tuple[OrderRow, str]]


def fit_to_stock(candidates: list[OrderRow], remaining: Mapping[str, int]) -> Admission:
    """Admit new orders in Kafka order while each SKU has units left; refuse the rest.

    `remaining` is units_on_sale - units_sold per SKU, read under a row lock. A SKU missing
    from it has no product row. Refusals are the oversell the gate must never cause (I1): the
    database records them instead of breaking its CHECK constraint.
    """
    left = dict(remaining)
    insert: list[OrderRow] = []
    refuse: list[tuple[OrderRow, str]] = []
    for order in sorted(candidates, key=lambda o: (o.accepted_at, o.partition, o.offset)):
        if order.sku not in left:
            refuse.append((order, "unknown_sku"))
        elif order.qty > left[order.sku]:
            refuse.append((order, "oversell"))
        else:
            left[order.sku] -= order.qty
            insert.append(order)
    return Admission(insert=insert, refuse=refuse)


def fits_whole(candidates: Iterable[OrderRow], remaining: Mapping[str, int]) -> bool:
    """True when every candidate's SKU has a product row and each SKU's total qty fits its units left.

    Then `fit_to_stock` would admit all of them, whatever their order, so the writer can insert
    the batch as it is. That is every batch the gate produces (it never oversells); False sends
    the batch through the order-by-order fit.
    """
    demand: dict[str, int] = {}
    for order in candidates:
        demand[order.sku] = demand.get(order.sku, 0) + order.qty
    return all(sku in remaining and qty <= remaining[sku] for sku, qty in demand.items())


def commit_positions(messages: Iterable[Incoming]) -> dict[tuple[str, int], int]:
    """The offset to commit per (topic, partition): one past the highest offset handled."""
    positions: dict[tuple[str, int], int] = {}
    for msg in messages:
        key = (msg.topic, msg.partition)
        positions[key] = max(positions.get(key, 0), msg.offset + 1)
    return positions


def batches_in_flight(wanted: int, pool_max_size: int) -> int:
    """How many batches may be in PostgreSQL at once: each holds a connection for its transaction.

    Capped by the pool so that a batch never waits on the pool behind its own predecessors (with
    `pool_max_size=1` the worker is strictly serial again). Always at least 1.
    """
    return max(1, min(wanted, pool_max_size))
