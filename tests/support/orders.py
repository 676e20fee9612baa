"""Order events for tests: factories of valid `OrderAccepted`s and `OrdersAccepted`s, any field replaceable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from flashgate.events import SCHEMA_VERSION, OrderAccepted, OrdersAccepted


def order(sku: str = "S", **changes: object) -> OrderAccepted:
    """An accepted order for one unit of `sku`: fresh order id and idempotency key, a random user,
    accepted now. `changes` replace fields by name (unchecked, so a test can build an invalid one).
    """
    event = OrderAccepted(
        schema_version=SCHEMA_VERSION,
        order_id=uuid.uuid4(),
        sku=sku,
        user_id=f"u-{uuid.uuid4().hex[:8]}",
        qty=1,
        idempotency_key=uuid.uuid4().hex,
        accepted_at=datetime.now(UTC),
    )
    return msgspec.structs.replace(event, **changes) if changes else event


def batch(*events: OrderAccepted, traces: dict[uuid.UUID, str] | None = None) -> OrdersAccepted:
    """The version-2 message of `events` (one SKU, one accepted_at: the first event's), with their traceparents."""
    traces = traces or {}
    return OrdersAccepted.of(events, [traces.get(e.order_id, "") for e in events])
