"""The per-order Python objects of the order path: admit.lua's reply parsed, and an order's answer made.

    .venv/bin/pytest -p benchmark bench/micro/test_order_objects.py

Run it in each of two checkouts to compare them: the reply is parsed by the checkout's
`gate.admission.parse_admit`, the answer made by its `gate.answers.order_answer`.
"""

from __future__ import annotations

from typing import Any

import pytest

from flashgate.orderindex import new_order_id_texts, sku_slot
from gate.admission import AdmitRequest, Code, parse_admit
from gate.answers import order_answer


def _reply(n: int) -> list[Any]:
    """n admitted orders of one call, as hiredis hands admit.lua's flat reply over."""
    raw: list[Any] = []
    for i in range(n):
        raw += [0, 1_764_740_000_000_000, "1764740000000-0", 100_000 - i, 0]
    return raw


@pytest.mark.parametrize("n", [1, 20, 64])
def test_parse_admit(benchmark: Any, n: int) -> None:
    ids = new_order_id_texts(sku_slot("sku-123"), n, 1_764_740_000_000)
    admissions = benchmark(parse_admit, _reply(n), ids)
    assert [a.code for a in admissions] == [Code.ACCEPTED] * n


def test_request_and_answer_of_one_order(benchmark: Any) -> None:
    (adm,) = parse_admit(_reply(1), new_order_id_texts(sku_slot("sku-123"), 1, 1_764_740_000_000))

    def one() -> Any:
        return order_answer(adm, AdmitRequest("sku-123", "u1", "k1", 1), delivered=True)

    assert benchmark(one).status == 202
