"""The OrderAccepted contract: round trip, validation, version gate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from flashgate.events import SCHEMA_VERSION, EventDecodeError, OrderAccepted, UnknownSchemaVersion, decode, encode


def event(**changes: object) -> OrderAccepted:
    base = OrderAccepted(
        schema_version=SCHEMA_VERSION,
        order_id=uuid.uuid4(),
        sku="SKU-1",
        user_id="u1",
        qty=2,
        idempotency_key="key-1",
        accepted_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
    )
    return msgspec.structs.replace(base, **changes)


def test_round_trip() -> None:
    e = event()
    assert decode(encode(e)) == e


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    raw = msgspec.json.decode(encode(event()))
    raw["coupon"] = "X"
    assert decode(msgspec.json.encode(raw)).sku == "SKU-1"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"{}",
        b"[1,2]",
        encode(event(qty=0)),
        encode(event(sku="")),
        encode(event(idempotency_key="has space")),
        encode(event(user_id="x" * 129)),
    ],
)
def test_poison_is_rejected(payload: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode(payload)


def test_naive_timestamp_is_rejected() -> None:
    raw = msgspec.json.decode(encode(event()))
    raw["accepted_at"] = "2026-11-21T12:00:00"
    with pytest.raises(EventDecodeError, match="timezone"):
        decode(msgspec.json.encode(raw))


def test_unknown_version_is_its_own_error() -> None:
    with pytest.raises(UnknownSchemaVersion):
        decode(encode(event(schema_version=99)))
