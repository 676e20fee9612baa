"""`flashgate bench script-ab` on the test stack: both variants run, figures per batch size, nothing left behind."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.script_ab import ScriptAbError, ScriptAbSettings, admit_calls, run_script_ab, scripted_admission
from flashgate import names
from flashgate.names import LUA_DIR
from tests.support.sales import Sale
from tests.support.stackctl import StackHandle

ROOT = Path(__file__).resolve().parents[2]


async def index_entries(redis_url: str) -> int:
    """How many order-index entries Redis holds (index keys carry a slot's tag, not a SKU)."""
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return sum([int(await r.hlen(k)) async for k in r.scan_iter(match="oidx:*", count=1000)])
    finally:
        await r.aclose()


async def leftovers(redis_url: str) -> tuple[list[str], list[str]]:
    """Keys of script-ab SKUs, and script-ab SKUs in the sale registry."""
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [k async for k in r.scan_iter(match="*{script-ab-*", count=1000)]
        registered = [str(s) for s in await r.smembers(names.SALE_REGISTRY) if str(s).startswith("script-ab-")]
        return [str(k) for k in keys], registered
    finally:
        await r.aclose()


def test_script_ab_measures_each_variant_per_batch_size_and_cleans_up(stack: StackHandle, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(ROOT / "flashgate" / "lua", other / "flashgate" / "lua")
    s = ScriptAbSettings(a=ROOT, b=other, redis_url=stack.redis_url, batches=(1, 4), calls=6, callers=2,
                         warmup=1, rounds=2, lock=None, out_dir=tmp_path / "out")  # fmt: skip
    indexed = asyncio.run(index_entries(stack.redis_url))
    record = run_script_ab(s)
    assert [(r["round"], r["variant"]) for r in record["runs"]] == [(1, "A"), (1, "B"), (2, "B"), (2, "A")]
    for run in record["runs"]:
        f = run["figures"]
        assert set(f) == {f"{k} @{b}" for k in ("Redis µs/adm", "evalsha µs/adm", "adm/s") for b in (1, 4)}
        assert f["evalsha µs/adm @4"] > 0
        assert f["adm/s @1"] > 0
    assert len(record["summary"]["Redis µs/adm @4"]["ratios"]) == 2
    [raw] = (tmp_path / "out").glob("script-ab-*.json")
    assert json.loads(raw.read_text())["summary"] == record["summary"]
    assert asyncio.run(leftovers(stack.redis_url)) == ([], [])
    assert asyncio.run(index_entries(stack.redis_url)) == indexed  # each run's index entries deleted


def test_a_call_that_does_not_admit_every_order_stops_the_run(stack: StackHandle, name: str) -> None:
    async def go() -> None:
        async with scripted_admission(stack.redis_url, Sale(sku=name, units=1), LUA_DIR) as (client, _):
            await admit_calls(client, name, 2, {})()

    with pytest.raises(ScriptAbError, match=r"a call of 2 new orders .* answered \['ACCEPTED', 'SOLD_OUT'\]"):
        asyncio.run(go())
