"""admit.lua alone on real Redis: admissions/s and Redis CPU per admission at 1, 16, 64 and 256 orders per call.

Each round is one admit.lua call (`AdmissionClient.admit_batch`, through bench/script_ab.py's
helpers) of N new orders for one SKU with (practically) endless stock, so every order is admitted:
the dearest path (outbox append, stored answer, index), on an open sale and on one with a rate
limit and a per-user cap (`SALES`). Redis CPU is read from `INFO cpu` (used_cpu_user +
used_cpu_sys, the whole server, so keep the box otherwise quiet), `INFO commandstats` (evalsha
µs/call) and `INFO memory` around the benchmark; `extra_info` holds admissions_per_s,
redis_cpu_us_per_admission, evalsha_us_per_call, evalsha_us_per_admission,
redis_bytes_per_admission and script_commands_per_admission (Redis commands run inside
admit.lua). To compare two versions of the script, `flashgate bench script-ab` interleaves them.
Run (stack up, `eval "$(flashgate stack env)"`):

    .venv/bin/pytest bench/micro/test_admission.py -p benchmark --benchmark-columns=median,ops,rounds
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.script_ab import SALES, admit_calls, counters, forget_index, scripted_admission
from flashgate.names import LUA_DIR
from gate.admission import AdmissionClient
from tests.support.sales import Sale


@pytest.fixture(params=sorted(SALES))
def admission(
    request: pytest.FixtureRequest, redis_url: str, loop: asyncio.AbstractEventLoop
) -> Iterator[tuple[AdmissionClient, aioredis.Redis, str]]:
    """An admission client, a plain client and a SKU on sale with (practically) endless stock."""
    sku = f"micro-{uuid.uuid4().hex[:8]}"
    cm = scripted_admission(redis_url, Sale(sku=sku, units=10**9, **SALES[request.param]), LUA_DIR)
    client, redis = loop.run_until_complete(cm.__aenter__())
    yield client, redis, sku
    loop.run_until_complete(cm.__aexit__(None, None, None))


@pytest.mark.parametrize("batch", [1, 16, 64, 256])
def test_admit_batch(
    benchmark: Any,
    admission: tuple[AdmissionClient, aioredis.Redis, str],
    loop: asyncio.AbstractEventLoop,
    batch: int,
) -> None:
    client, redis, sku = admission
    indexed: dict[str, list[str]] = {}
    one_call = admit_calls(client, sku, batch, indexed)  # raises unless every order is admitted
    admitted = 0

    async def counted() -> None:
        nonlocal admitted
        admitted += await one_call()

    before = loop.run_until_complete(counters(redis))
    benchmark(lambda: loop.run_until_complete(counted()))
    after = loop.run_until_complete(counters(redis))
    loop.run_until_complete(forget_index(redis, indexed))
    calls = max(1, after.evalsha_calls - before.evalsha_calls)
    benchmark.extra_info["orders_per_call"] = batch
    benchmark.extra_info["admissions_per_s"] = batch / benchmark.stats.stats.median
    benchmark.extra_info["redis_cpu_us_per_admission"] = (after.cpu_s - before.cpu_s) / max(1, admitted) * 1e6
    benchmark.extra_info["evalsha_us_per_call"] = (after.evalsha_us - before.evalsha_us) / calls
    benchmark.extra_info["evalsha_us_per_admission"] = (after.evalsha_us - before.evalsha_us) / max(1, admitted)
    benchmark.extra_info["redis_bytes_per_admission"] = (after.memory - before.memory) / max(1, admitted)
    benchmark.extra_info["script_commands_per_admission"] = (after.inner_commands - before.inner_commands) / max(
        1, admitted
    )
