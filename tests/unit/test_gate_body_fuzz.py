"""The order body decoder, fuzzed: whatever the bytes, an OrderBody or a typed 400, never anything else.

Issue 13 found invalid UTF-8 inside a JSON string escaping as a 500 (msgspec raises
UnicodeDecodeError there, not DecodeError). These properties look for any other escape: raw
bytes, JSON of any shape, near-valid bodies with bytes flipped, and every valid body.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gate.errors import BadRequest
from gate.fastpath import OrderBody, parse_order

CODES = {"malformed_json", "invalid_fields"}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
order_like = st.fixed_dictionaries(
    {"sku": st.text(max_size=70) | json_values, "qty": st.integers(-5, 1005) | json_values},
    optional={"extra": json_values},
)
valid = st.builds(
    OrderBody,
    sku=st.from_regex(r"\A[A-Za-z0-9._-]{1,64}\Z"),
    qty=st.integers(1, 1000),
)


def judged(body: bytes) -> OrderBody | None:
    """parse_order's verdict; fails the test on any exception other than a 400 with a body code."""
    try:
        return parse_order(body, "key-1")
    except BadRequest as e:
        refused = e
    assert (refused.status, refused.code in CODES) == (400, True), refused.code
    return None


@FUZZ
@given(st.binary(max_size=256))
@example(b'{"sku": "\xff\xfe\xfd", "qty": 1}')
@example(b'{"sku": "a\\ud800", "qty": 1}')
@example(b'{"sku": "a", "qty": 1e400}')
@example(b'{"sku": "a", "qty": 1' + b"0" * 400 + b"}")
@example(b"[" * 10_000)
def test_any_bytes_are_an_order_or_a_400(body: bytes) -> None:
    judged(body)


@FUZZ
@given(order_like, st.booleans())
def test_any_json_shape_is_an_order_or_a_400(doc: dict[str, object], ascii_only: bool) -> None:
    judged(json.dumps(doc, ensure_ascii=ascii_only).encode())


@FUZZ
@given(valid, st.data())
def test_a_valid_body_with_bytes_flipped_is_an_order_or_a_400(order: OrderBody, data: st.DataObject) -> None:
    body = bytearray(json.dumps({"sku": order.sku, "qty": order.qty}).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    judged(bytes(body))


@FUZZ
@given(valid)
def test_every_valid_body_is_accepted_as_sent(order: OrderBody) -> None:
    assert judged(json.dumps({"sku": order.sku, "qty": order.qty}).encode()) == order


@FUZZ
@given(valid, st.sampled_from(["{}.0", "{}e0", "{}.000", "{}0e-1"]))
def test_a_qty_written_as_an_integral_number_is_that_integer(order: OrderBody, spelling: str) -> None:
    """JSON Schema (OpenAPI 3.1) counts 2.0 as the integer 2; schemathesis sent `"qty": 400.0` and got a 400."""
    qty = spelling.format(order.qty)
    assert judged(f'{{"sku": "{order.sku}", "qty": {qty}}}'.encode()) == order


@pytest.mark.parametrize("qty", ["1.5", "0.0", "1001.0", "-1.0", "1e400", '"1"', "true", "null"])
def test_a_qty_that_is_not_an_integer_in_range_is_still_refused(qty: str) -> None:
    assert judged(b'{"sku": "a", "qty": %s}' % qty.encode()) is None
