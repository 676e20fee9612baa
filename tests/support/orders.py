"""Order events for tests: one factory of valid `OrderAccepted`s, any field replaceable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from flashgate.events import SCHEMA_VERSION, OrderAccepted


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
