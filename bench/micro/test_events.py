"""OrderAccepted encode and decode (msgspec), the per-message cost on both sides of Kafka."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flashgate.events import SCHEMA_VERSION, OrderAccepted, decode, encode

EVENT = OrderAccepted(
    schema_version=SCHEMA_VERSION,
    order_id=uuid.uuid4(),
    sku="sku-123",
    user_id="user-4567",
    qty=1,
    idempotency_key="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    accepted_at=datetime.now(UTC),
)


def test_encode(benchmark: Any) -> None:
    assert benchmark(encode, EVENT)


def test_decode(benchmark: Any) -> None:
    payload = encode(EVENT)
    assert benchmark(decode, payload) == EVENT
