"""admit.lua alone on real Redis: admissions/s and Redis CPU per admission at 1, 16, 64 and 256 orders per call.

Each round is one admit.lua call (`AdmissionClient.admit_batch`) of N new orders for one SKU
with (practically) endless stock, so every order is admitted: the dearest path (outbox append,
stored answer, index), on an open sale and on one with a rate limit and a per-user cap
(`SALES`). Redis CPU is read from `INFO cpu` (used_cpu_user + used_cpu_sys, the whole server,
so keep the box otherwise quiet), `INFO commandstats` (evalsha µs/call) and `INFO memory`
around the benchmark; `extra_info` holds admissions_per_s, redis_cpu_us_per_admission,
evalsha_us_per_call, evalsha_us_per_admission, redis_bytes_per_admission and
script_commands_per_admission (Redis commands run inside admit.lua).
Run (stack up, `eval "$(flashgate stack env)"`):

    .venv/bin/pytest bench/micro/test_admission.py -p benchmark --benchmark-columns=median,ops,rounds
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

from flashgate.orderindex import new_order_id, sku_slot
from gate.admission import AdmissionClient, AdmitRequest, Code
from gate.breaker import Breaker
from gate.redis_batch import RedisBatcher
from gate.scripts import Scripts
from tests.support.sales import Sale, put_sale


@asynccontextmanager
async def _client(redis_url: str, sale: Sale) -> AsyncIterator[tuple[AdmissionClient, aioredis.Redis]]:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await put_sale(redis, sale)
    batcher = RedisBatcher(redis, Breaker(1000, 0.1), timeout_s=5)
    scripts = Scripts()
    for source in scripts.source.values():
        await redis.script_load(source)
    try:
        yield AdmissionClient(batcher, scripts, idem_ttl_s=600), redis
    finally:
        await batcher.close()
        await redis.aclose()


async def _redis_cpu(redis: aioredis.Redis) -> tuple[float, int, int, int, int]:
    """(server CPU seconds, evalsha calls, evalsha µs, used memory bytes, commands run inside scripts) so far."""
    cpu = await redis.info("cpu")
    commands = await redis.info("commandstats")
    stats = commands.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    # What the server counted, minus the calls from outside (clients' commands, and these INFOs).
    inner = sum(int(v["calls"]) for k, v in commands.items() if k not in ("cmdstat_evalsha", "cmdstat_info"))
    memory = int((await redis.info("memory"))["used_memory"])
    cpu_s = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return cpu_s, int(stats["calls"]), int(stats["usec"]), memory, inner


# "open": no rate limit, no cap; "limited": every order also runs GCRA and the per-user cap
# (each buyer orders once, so every order still passes them).
SALES: dict[str, dict[str, Any]] = {"open": {}, "limited": {"rate_per_s": 1.0, "burst": 2, "per_user_limit": 2}}


@pytest.fixture(params=sorted(SALES))
def admission(
    request: pytest.FixtureRequest, redis_url: str, loop: asyncio.AbstractEventLoop
) -> Iterator[tuple[AdmissionClient, aioredis.Redis, str]]:
    """An admission client, a plain client and a SKU on sale with (practically) endless stock."""
    sku = f"micro-{uuid.uuid4().hex[:8]}"
    cm = _client(redis_url, Sale(sku=sku, units=10**9, **SALES[request.param]))
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
    slot = sku_slot(sku)
    n = itertools.count()
    admitted = 0

    async def one_call() -> list[Code]:
        nonlocal admitted
        reqs = [AdmitRequest(sku=sku, user=f"u{i}", key=f"k{i}", qty=1) for i in itertools.islice(n, batch)]
        got = await client.admit_batch(sku, reqs, [str(new_order_id(slot)) for _ in reqs])
        admitted += len(got)
        return [a.code for a in got]

    before = loop.run_until_complete(_redis_cpu(redis))
    codes = benchmark(lambda: loop.run_until_complete(one_call()))
    after = loop.run_until_complete(_redis_cpu(redis))
    assert codes == [Code.ACCEPTED] * batch
    calls = max(1, after[1] - before[1])
    benchmark.extra_info["orders_per_call"] = batch
    benchmark.extra_info["admissions_per_s"] = batch / benchmark.stats.stats.median
    benchmark.extra_info["redis_cpu_us_per_admission"] = (after[0] - before[0]) / max(1, admitted) * 1e6
    benchmark.extra_info["evalsha_us_per_call"] = (after[2] - before[2]) / calls
    benchmark.extra_info["evalsha_us_per_admission"] = (after[2] - before[2]) / max(1, admitted)
    benchmark.extra_info["redis_bytes_per_admission"] = (after[3] - before[3]) / max(1, admitted)
    benchmark.extra_info["script_commands_per_admission"] = (after[4] - before[4]) / max(1, admitted)
