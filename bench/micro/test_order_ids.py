"""The order ids of one admit.lua call as the gate sends them: as UUIDs turned to text, or as text from the start."""

from __future__ import annotations

from typing import Any

import pytest

from flashgate.orderindex import new_order_id_texts, new_order_ids, sku_slot

SLOT = sku_slot("sku-123")


def _via_uuids(slot: int, n: int) -> list[str]:
    return [str(o) for o in new_order_ids(slot, n)]


@pytest.mark.parametrize("n", [1, 16, 64])
@pytest.mark.parametrize("make", [_via_uuids, new_order_id_texts], ids=["uuids", "texts"])
def test_order_ids_of_one_call(benchmark: Any, make: Any, n: int) -> None:
    ids = benchmark(make, SLOT, n)
    assert len(set(ids)) == n
