"""The OrderAccepted contract: round trip, validation, version gate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from flashgate.events import (
    EventDecodeError,
    OrderAccepted,
    OrdersAccepted,
    UnknownSchemaVersion,
    decode,
    decode_any,
    decode_batch,
    decode_many,
    encode,
)
from tests.support.orders import batch, order


def event(**changes: object) -> OrderAccepted:
    """The shared factory with fixed, readable values (the contract tests compare fields and bytes)."""
    at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    fixed = order("SKU-1", user_id="u1", qty=2, idempotency_key="key-1", accepted_at=at)
    return msgspec.structs.replace(fixed, **changes)


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


def _with(**fields: object) -> bytes:
    raw = msgspec.json.decode(encode(event()))
    raw.update(fields)
    return msgspec.json.encode(raw)


_GOOD = encode(event())
_KEY_CASES = [
    "k", "key-1", "~!#", "has space", " lead", "trail ", "tab\there", "nl\n", "k\n", "\x7f", "k\x7fk", "é", "x" * 128,
    "x" * 129, "",
]  # fmt: skip
_PAYLOADS = [
    _GOOD,
    *(_with(idempotency_key=k) for k in _KEY_CASES),
    _GOOD.replace(b'"key-1"', b'"key\\u0020x"'),  # an escaped space
    _GOOD.replace(b'"key-1"', b'"key\\u002dx"'),  # an escaped, valid character
    _GOOD.replace(b'"key-1"', b'"k\\n"'),  # `$` in the pattern lets one trailing newline through
    _GOOD.replace(b'"key-1"', b'"k k","idempotency_key":"ok"'),  # duplicate key: bad copy first
    _GOOD.replace(b'"key-1"', b'"ok","idempotency_key":"k k"'),  # duplicate key: bad copy last
    _GOOD.replace(b'"idempotency_key"', b'"idempotency\\u005fkey"'),  # the key's name escaped
    _GOOD.replace(b'"key-1"', b'"ok","note":"idempotency_key"'),
    _GOOD.replace(b'"u1"', b'"\xc3\xa9"'),  # non-ASCII user id, valid
    _GOOD.replace(b'"u1"', b'"u\x7f"'),  # DEL in another field, valid
    _with(idempotency_key="k k", qty=0),  # two faults: the first in field order is named
    _with(qty=0, idempotency_key="k k"),
    _with(schema_version=99),
    _with(schema_version=99, idempotency_key="k k"),
    _with(accepted_at="2026-11-21T12:00:00"),
    _with(accepted_at="2026-11-21T12:00:00", idempotency_key="k k"),
    _with(sku=""),
    _with(order_id="not-a-uuid"),
    b"not json",
    b"{}",
    b"",
    b"\xff\xfe",
]


@pytest.mark.parametrize("payload", _PAYLOADS)
def test_decode_many_gives_decodes_verdict_and_message(payload: bytes) -> None:
    try:
        expected: OrderAccepted | EventDecodeError = decode(payload)
    except EventDecodeError as e:
        expected = e
    [got] = decode_many([payload])
    if isinstance(expected, EventDecodeError):
        assert isinstance(got, type(expected))
        assert type(got) is type(expected)
        assert str(got) == str(expected)
    else:
        assert got == expected


def test_decode_many_keeps_order_and_count() -> None:
    events = [event(idempotency_key=f"k{i}") for i in range(5)]
    payloads = [encode(e) for e in events]
    got = decode_many([payloads[0], b"bad", *payloads[1:]])
    assert got[0] == events[0]
    assert isinstance(got[1], EventDecodeError)
    assert got[2:] == events[1:]


def _batch(**changes: object) -> bytes:
    raw = msgspec.json.decode(encode(batch(event(), event(order_id=uuid.uuid4(), idempotency_key="key-2"))))
    raw.update(changes)
    return msgspec.json.encode(raw)


def test_a_version_2_message_round_trips_and_names_its_orders_as_version_1_does() -> None:
    a, b = event(), event(order_id=uuid.uuid4(), idempotency_key="key-2", qty=3)
    message = batch(a, b, traces={b.order_id: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    payload = encode(message)
    assert decode_batch(payload) == message == decode_any(payload)
    assert message.events() == [a, b]
    assert payload.count(b'"traceparent"') == 1  # an untraced order says nothing of it


_BATCH_PAYLOADS = [
    _batch(),
    _batch(coupon="X"),  # a newer producer's field
    msgspec.json.encode({**msgspec.json.decode(_batch()), "schema_version": 2}),  # fields in another order
    b'{"sku":"SKU-1","schema_version":2' + _batch()[len(b'{"schema_version":2,"sku":"SKU-1"') :],
    _batch(orders=[]),
    _batch(orders=[{"order_id": str(uuid.uuid4()), "user_id": "u", "qty": 1, "idempotency_key": "k"}] * 4097),
    _batch(accepted_at="2026-11-21T12:00:00"),
    _batch(sku="a b"),
    _batch(schema_version=3),
    _batch()[:-1],
]


@pytest.mark.parametrize("payload", _BATCH_PAYLOADS)
def test_decode_many_gives_decode_anys_verdict_on_version_2(payload: bytes) -> None:
    try:
        expected: OrderAccepted | OrdersAccepted | EventDecodeError = decode_any(payload)
    except EventDecodeError as e:
        expected = e
    [got] = decode_many([payload])
    if isinstance(expected, EventDecodeError):
        assert type(got) is type(expected)
        assert str(got) == str(expected)
    else:
        assert got == expected


def test_version_2_limits() -> None:
    with pytest.raises(EventDecodeError, match="length >= 1"):
        decode_batch(_batch(orders=[]))
    most = [{"order_id": str(uuid.uuid4()), "user_id": "u", "qty": 1, "idempotency_key": f"k{i}"} for i in range(4096)]
    assert len(decode_batch(_batch(orders=most)).orders) == 4096
    with pytest.raises(UnknownSchemaVersion):
        decode_batch(_batch(schema_version=3))
    with pytest.raises(EventDecodeError):
        decode(_batch())  # a version-2 message is not a version-1 one
