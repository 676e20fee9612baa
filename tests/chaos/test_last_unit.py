"""The last unit: 1,000 concurrent buyers against a served gate (two processes) for one unit left."""

from __future__ import annotations

import pytest

from tests.chaos.checker import Invariants
from tests.chaos.conftest import OpenSale, StartGate, StartWorker
from tests.chaos.load import Load
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.chaos


async def test_10_thousand_buyers_for_the_last_unit_exactly_one_202(
    stack: StackHandle, gates: StartGate, workers: StartWorker, open_sale: OpenSale, invariants: Invariants
) -> None:
    units = 50
    sku = await open_sale(units)
    # Two server processes race in Redis; a generous Redis timeout keeps a starved box from 503s.
    gate = gates(workers=2, redis_timeout_ms=1000)
    workers()
    early = Load(gate.base_url, sku, buyers=units - 1, concurrency=16, user_prefix="early")
    early.start()
    await early.finish()
    assert early.final_statuses() == {202: units - 1}, (early.final_statuses(), early.codes())

    race = Load(gate.base_url, sku, buyers=1000, concurrency=1000, user_prefix="last", timeout_s=30)
    race.start()
    await race.finish()
    assert not race.unanswered(), race.unanswered()[:3]
    assert race.final_statuses() == {202: 1, 409: 999}, (race.final_statuses(), race.codes())
    assert {a.code for a in race.final.values() if a.status == 409} == {"sold_out"}
    await invariants.check(sku, fault="10 1,000 concurrent buyers for the last unit", loads=[early, race])
