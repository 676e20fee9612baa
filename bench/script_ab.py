"""Interleaved A/B of two checkouts' admit.lua alone, on the running Redis: Redis CPU per admission.

What it measures: per round, A then B (alternating which goes first), one run per variant. A run
takes, for each batch size, a fresh SKU with practically endless stock and `callers` concurrent
callers making `calls` admit.lua calls of `batch` new orders in all (every order admitted: the
dearest path, outbox entry, stored answer and index), after `warmup` calls not measured. Redis
CPU is `INFO cpu` (used_cpu_user + used_cpu_sys: the whole server, AOF writes and fsync included,
so keep other load off the stack's Redis), the script's own time `INFO commandstats` (evalsha µs).
The SKU's keys are deleted after its batch (index entries and GCRA states expire with their TTLs).

Both variants call through THIS checkout's client (gate.admission.AdmissionClient, one packed
EVALSHA per call); only the Lua scripts come from each checkout's flashgate/lua. So it compares
scripts that take the same arguments and give the same reply, which a whole-pipeline A/B
(bench/ab.py) cannot resolve when the change is a few µs per order: there, the box's noise moves
every process by 10-30 % between runs.

    flashgate stack up && eval "$(flashgate stack env)"
    git worktree add /tmp/base HEAD
    flashgate bench script-ab --a /tmp/base --b . --batch 16 --batch 64 --rounds 3

Prints medians, B/A within each round and the median B/A (bench/ab_stats.py); raw results in
bench/results/script-ab-<timestamp>.json. Holds the shared bench lock for the whole run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench import ab_stats
from bench.ab import bench_lock, lua_dir, round_order
from bench.served import machine
from flashgate import names
from flashgate.orderindex import call_field, index_key, new_order_ids, sku_slot
from flashgate.redis_url import redis_now_ms
from gate.admission import AdmissionClient, AdmitRequest, Code
from gate.breaker import Breaker
from gate.redis_batch import RedisBatcher
from gate.scripts import SCRIPT_NAMES, Scripts
from tests.support.sales import Sale, put_sale

# "open": no rate limit, no cap; "limited": every order also runs GCRA and the per-user cap
# (each buyer orders once, so every order still passes them).
SALES: dict[str, dict[str, Any]] = {"open": {}, "limited": {"rate_per_s": 1.0, "burst": 2, "per_user_limit": 2}}

IDEM_TTL_S = 600  # the admission client's; it names the answer buckets deleted after a run


class ScriptAbError(RuntimeError):
    """A checkout has no admit.lua, or a call did not admit every order it was given."""


@dataclass(frozen=True)
class ScriptAbSettings:
    a: Path
    b: Path
    redis_url: str
    batches: tuple[int, ...] = (16, 64)
    calls: int = 1000
    callers: int = 4
    warmup: int = 20
    rounds: int = 3
    sale: str = "open"
    lock: Path | None = Path("/tmp/flashgate-bench.lock")
    out_dir: Path = Path("bench/results")


def check_scripts(checkout: Path) -> Path:
    """The checkout's Lua directory, holding every script the client loads."""
    directory = lua_dir(checkout.resolve())
    missing = [name for name in SCRIPT_NAMES if not (directory / f"{name}.lua").is_file()]
    if missing:
        raise ScriptAbError(f"{checkout} has no {', '.join(f'{n}.lua' for n in missing)} under {directory}")
    return directory


@dataclass(frozen=True)
class Counters:
    """What Redis has counted so far: server CPU, evalsha calls and µs, used memory, commands run inside scripts."""

    cpu_s: float
    evalsha_calls: int
    evalsha_us: int
    memory: int
    inner_commands: int


async def counters(redis: aioredis.Redis) -> Counters:
    cpu = await redis.info("cpu")
    commands = await redis.info("commandstats")
    stats = commands.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    # Every command counted but the calls from outside (clients' EVALSHAs, and these INFOs).
    inner = sum(int(v["calls"]) for k, v in commands.items() if k not in ("cmdstat_evalsha", "cmdstat_info"))
    memory = int((await redis.info("memory"))["used_memory"])
    return Counters(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), int(stats["calls"]),
                    int(stats["usec"]), memory, inner)  # fmt: skip


@asynccontextmanager
async def scripted_admission(
    redis_url: str, sale: Sale, scripts_dir: Traversable
) -> AsyncIterator[tuple[AdmissionClient, aioredis.Redis]]:
    """An admission client running `scripts_dir`'s scripts and a plain client, `sale` put in Redis.

    On leaving, the SKU leaves the sale registry, so no relay republishes what the benchmark
    admitted, and its keys are deleted by name (no keyspace SCAN): config, stock, buyers, outbox
    and answer buckets. Its GCRA states expire within seconds; `forget_index` removes its index
    entries, which would live a day and grow the dataset (and the AOF rewrites' forks) run by run.
    """
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await put_sale(redis, sale)
    batcher = RedisBatcher(redis, Breaker(1000, 0.1), timeout_s=5)
    scripts = Scripts(scripts_dir)
    for source in scripts.source.values():
        await redis.script_load(source)
    started_ms = await redis_now_ms(redis)
    try:
        yield AdmissionClient(batcher, scripts, idem_ttl_s=IDEM_TTL_S), redis
    finally:
        await batcher.close()
        await redis.srem(names.SALE_REGISTRY, sale.sku)
        # The answer buckets the calls can have written (the one before the start, to the one now).
        width_ms = IDEM_TTL_S * 1000
        first, last = started_ms // width_ms - 1, await redis_now_ms(redis) // width_ms
        buckets = [names.idem_bucket(sale.sku, IDEM_TTL_S, b * width_ms) for b in range(first, last + 1)]
        await redis.delete(*names.sale_keys(sale.sku), *buckets)
        await redis.aclose()


async def forget_index(redis: aioredis.Redis, indexed: dict[str, list[str]]) -> None:
    """Delete the benchmark's index fields (HDEL by name, in chunks), not other SKUs' of the same slot."""
    for key, fields in indexed.items():
        for i in range(0, len(fields), 10_000):
            await redis.hdel(key, *fields[i : i + 10_000])


def admit_calls(
    client: AdmissionClient, sku: str, batch: int, indexed: dict[str, list[str]]
) -> Callable[[], Awaitable[int]]:
    """Each call of the function returned admits `batch` new orders of new buyers on `sku`, or raises.

    The index fields the calls can have written (either form, `flashgate.orderindex`) are added
    to `indexed`, by index key.
    """
    slot = sku_slot(sku)
    n = itertools.count()

    async def one_call() -> int:
        reqs = [AdmitRequest(sku=sku, user=f"u{i}", key=f"k{i}", qty=1) for i in itertools.islice(n, batch)]
        ids = [str(o) for o in new_order_ids(slot, len(reqs))]
        indexed.setdefault(index_key(uuid.UUID(ids[0])), []).extend([call_field(ids[0]), *ids])
        got = await client.admit_batch(sku, reqs, ids)
        codes = {a.code for a in got}
        if codes != {Code.ACCEPTED}:
            raise ScriptAbError(f"a call of {batch} new orders on {sku} answered {sorted(c.name for c in codes)}")
        return len(got)

    return one_call


async def one_batch_size(s: ScriptAbSettings, scripts_dir: Path, batch: int) -> dict[str, float]:
    sku = f"script-ab-{uuid.uuid4().hex[:10]}"
    async with scripted_admission(s.redis_url, Sale(sku=sku, units=10**12, **SALES[s.sale]), scripts_dir) as (
        client,
        redis,
    ):
        indexed: dict[str, list[str]] = {}
        call = admit_calls(client, sku, batch, indexed)
        for _ in range(s.warmup):
            await call()
        per_caller = max(1, s.calls // s.callers)

        async def caller() -> int:
            return sum([await call() for _ in range(per_caller)])

        before, t0 = await counters(redis), time.perf_counter()
        admitted = sum(await asyncio.gather(*(caller() for _ in range(s.callers))))
        wall, after = time.perf_counter() - t0, await counters(redis)
        await forget_index(redis, indexed)
    return {
        f"Redis µs/adm @{batch}": (after.cpu_s - before.cpu_s) / admitted * 1e6,
        f"evalsha µs/adm @{batch}": (after.evalsha_us - before.evalsha_us) / admitted,
        f"adm/s @{batch}": admitted / wall,
    }


async def one_run(s: ScriptAbSettings, scripts_dir: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    for batch in s.batches:
        figures |= await one_batch_size(s, scripts_dir, batch)
    return figures


def run_script_ab(s: ScriptAbSettings) -> dict[str, Any]:
    """Every round, A and B in alternating order; the raw record is rewritten after each run."""
    dirs = {"A": check_scripts(s.a), "B": check_scripts(s.b)}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    s.out_dir.mkdir(parents=True, exist_ok=True)
    path = s.out_dir / f"script-ab-{stamp}.json"
    record: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), "files": str(path),
                              "settings": {k: str(v) for k, v in vars(s).items() if k != "redis_url"},
                              "runs": []}  # fmt: skip
    with bench_lock(s.lock):
        for rnd in range(1, s.rounds + 1):
            for variant in round_order("alternate", rnd):
                figures = asyncio.run(one_run(s, dirs[variant]))
                record["runs"].append({"round": rnd, "variant": variant, "figures": figures})
                shown = "  ".join(f"{k} {v:,.1f}" for k, v in figures.items() if k.startswith("Redis"))
                print(f"round {rnd} {variant}: {shown}", flush=True)
                record["summary"] = ab_stats.summarize(record["runs"])
                path.write_text(json.dumps(record, indent=1, default=str))
    return record


def lines(record: dict[str, Any], sides: Sequence[str]) -> list[str]:
    return [f"A = {sides[0]}", f"B = {sides[1]}", *ab_stats.summary_lines(record["summary"]), f"raw: {record['files']}"]
