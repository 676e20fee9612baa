"""One SKU rule (`flashgate.events.Sku`): the order body, the event and `flashgate sale` agree on every SKU."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from flashgate.events import EventDecodeError, decode, decode_many, is_sku
from gate.errors import BadRequest
from gate.fastpath import parse_order
from ops.sale.spec import SaleError, check_sku

GOOD = ["a", "shoe-42", "A.b_c-9", "x" * 64]
BAD = ["", "a:b", "a b", "a{b}", "é", "a\n", "\na", "a/b", "x" * 65]


def event(sku: str) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "order_id": str(uuid.uuid4()),
            "sku": sku,
            "user_id": "u",
            "qty": 1,
            "idempotency_key": "k",
            "accepted_at": datetime.now(UTC).isoformat(),
        }
    ).encode()


def verdicts(sku: str) -> dict[str, bool]:
    """Whether each place that checks a SKU takes this one."""
    out = {"is_sku": is_sku(sku)}
    try:
        parse_order(json.dumps({"sku": sku, "qty": 1}).encode(), "k")
        out["order body"] = True
    except BadRequest:
        out["order body"] = False
    try:
        decode(event(sku))
        out["event"] = True
    except EventDecodeError:
        out["event"] = False
    out["event, batch path"] = not isinstance(decode_many([event(sku)])[0], EventDecodeError)
    try:
        check_sku(sku)
        out["sale CLI"] = True
    except SaleError:
        out["sale CLI"] = False
    return out


@pytest.mark.parametrize("sku", GOOD)
def test_good_skus_pass_everywhere(sku: str) -> None:
    assert set(verdicts(sku).values()) == {True}


@pytest.mark.parametrize("sku", BAD)
def test_bad_skus_are_refused_everywhere(sku: str) -> None:
    """`a:b` was taken by `flashgate sale create` and then refused on every order."""
    assert set(verdicts(sku).values()) == {False}
