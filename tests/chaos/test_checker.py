"""The chaos suite's own check can fail: a 202 that never reached the database, and stock that drifted."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from flashgate import names
from tests.chaos.checker import Invariants
from tests.chaos.conftest import OpenSale
from tests.chaos.load import Attempt, Load
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.chaos


async def test_check_fails_on_a_lost_202_and_on_drifted_stock(
    stack: StackHandle, open_sale: OpenSale, tmp_path: Path
) -> None:
    lines: list[str] = []
    check = Invariants(stack=stack, workdir=tmp_path, record=lines.append)
    sku = await open_sale(10)
    claimed = Load("http://127.0.0.1:9", sku, buyers=1)
    claimed.attempts.append(Attempt(0, 202, str(uuid.uuid4()), "accepted", None, 0.0))
    with pytest.raises(AssertionError, match="I2"):
        await check.check(sku, fault="a 202 nobody recorded", loads=[claimed], drain_timeout_s=5)
    assert lines[-1].endswith("sent=1 202=1 rows=0 lost=1 duplicated=0 oversold=0"), lines

    r = aioredis.Redis.from_url(stack.redis_url)
    try:
        await r.decr(names.stock_key(sku))  # a unit gone from Redis with no order behind it
    finally:
        await r.aclose()
    with pytest.raises(AssertionError, match="I4"):
        await check.check(sku, fault="stock drifted", loads=[], drain_timeout_s=1)
