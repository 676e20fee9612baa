"""admit.lua through the gate's AdmissionClient on real Redis: one call alone, and 64 sharing a pipeline.

Each round is driven with run_until_complete, which adds a few µs per round; the pipelined
case divides that over its 64 calls (`calls_per_s` in extra_info).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from gate.admission import AdmissionClient, AdmitRequest, Code
from gate.breaker import Breaker
from gate.redis_batch import RedisBatcher
from gate.sales import Sale, put_sale
from gate.scripts import Scripts

PIPELINED = 64


@asynccontextmanager
async def _client(redis_url: str, sku: str) -> AsyncIterator[AdmissionClient]:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await put_sale(redis, Sale(sku=sku, units=10**9))
    batcher = RedisBatcher(redis, Breaker(1000, 0.1), timeout_s=5)
    scripts = Scripts()
    for source in scripts.source.values():
        await redis.script_load(source)
    try:
        yield AdmissionClient(batcher, scripts, idem_ttl_s=600)
    finally:
        await batcher.close()
        keys = [k async for k in redis.scan_iter(match=f"*{{{sku}}}*", count=10_000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i : i + 1000])
        await redis.aclose()


@pytest.fixture
def admission(redis_url: str, loop: asyncio.AbstractEventLoop) -> Iterator[tuple[AdmissionClient, str]]:
    """An admission client and a SKU on sale with (practically) endless stock."""
    sku = f"micro-{uuid.uuid4().hex[:8]}"
    cm = _client(redis_url, sku)
    client = loop.run_until_complete(cm.__aenter__())
    yield client, sku
    loop.run_until_complete(cm.__aexit__(None, None, None))


def test_admit_single(benchmark: Any, admission: tuple[AdmissionClient, str], loop: asyncio.AbstractEventLoop) -> None:
    client, sku = admission
    n = itertools.count()

    def one() -> Code:
        i = next(n)
        req = AdmitRequest(sku=sku, user=f"u{i}", key=f"k{i}", qty=1)
        return loop.run_until_complete(client.admit(req, str(uuid.uuid4()))).code

    assert benchmark(one) is Code.ACCEPTED


def test_admit_pipelined(
    benchmark: Any, admission: tuple[AdmissionClient, str], loop: asyncio.AbstractEventLoop
) -> None:
    client, sku = admission
    n = itertools.count()

    async def many() -> list[Code]:
        reqs = [AdmitRequest(sku=sku, user=f"u{i}", key=f"k{i}", qty=1) for i in itertools.islice(n, PIPELINED)]
        got = await asyncio.gather(*(client.admit(r, str(uuid.uuid4())) for r in reqs))
        return [a.code for a in got]

    codes = benchmark(lambda: loop.run_until_complete(many()))
    assert codes == [Code.ACCEPTED] * PIPELINED
    benchmark.extra_info["calls_per_round"] = PIPELINED
    benchmark.extra_info["calls_per_s"] = PIPELINED / benchmark.stats.stats.mean
