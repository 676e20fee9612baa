"""Load a running gate with new orders and print accepted orders/s and latency percentiles.

What it measures: POST /v1/orders end to end through a served gate (`flashgate gate`): HTTP
parsing, one admit.lua call (coalesced), the Kafka handoff with its delivery wait, the
outbox ack. Each request is a distinct user and key, so every one is admitted until the
stock runs out. The load generator is a minimal HTTP/1.1 keep-alive client on asyncio/uvloop
in ONE process, which shares the machine's cores with the gate: the figures are a floor.

How to run (stack up, gate served with auth off, as in docs/operations.md "Gate"):

    eval "$(flashgate stack env)"
    FLASHGATE_GATE_AUTH=off flashgate gate --workers 2 --port 8000 &
    .venv/bin/python bench/gate_load.py --port 8000 --requests 20000 --concurrency 64

It creates its own sale (REDIS_URL) with as many units as requests, unless --units says less,
with the tests' helper (tests/support/sales.py): run it from a checkout, not from the wheel.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import uvloop

from bench.http1 import order_request, read_answer
from flashgate.redis_url import connect
from tests.support.sales import Sale, put_sale


async def worker(
    host: str, port: int, sku: str, next_id: list[int], total: int, lat: list[float], codes: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while next_id[0] < total:
            i = next_id[0]
            next_id[0] += 1
            started = time.perf_counter()
            writer.write(order_request(sku, f"u{i}", f"k{i}"))
            status, _ = await read_answer(reader)
            lat.append(time.perf_counter() - started)
            codes[status] += 1
    finally:
        writer.close()


@dataclass(frozen=True)
class LoadResult:
    """Figures of one load run: wall time, answers by status, latency quantiles in ms."""

    requests: int
    wall_s: float
    codes: dict[int, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def accepted_per_s(self) -> float:
        return self.codes.get(202, 0) / self.wall_s


async def run(host: str, port: int, *, requests: int, concurrency: int, units: int = 0) -> LoadResult:
    """Create a sale with `units` (default: one per request) in REDIS_URL, then load the gate."""
    sku = f"bench-{uuid.uuid4().hex[:8]}"
    r = connect(os.environ["REDIS_URL"])
    await put_sale(r, Sale(sku=sku, units=units or requests))
    await r.aclose()
    lat: list[float] = []
    codes: Counter[int] = Counter()
    next_id = [0]
    started = time.perf_counter()
    await asyncio.gather(*(worker(host, port, sku, next_id, requests, lat, codes) for _ in range(concurrency)))
    wall = time.perf_counter() - started
    q = statistics.quantiles(lat, n=1000)
    return LoadResult(len(lat), wall, dict(sorted(codes.items())), q[499] * 1e3, q[899] * 1e3, q[989] * 1e3,
                      max(lat) * 1e3)  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    res = await run(args.host, args.port, requests=args.requests, concurrency=args.concurrency, units=args.units)
    print(f"requests {res.requests} in {res.wall_s:.2f} s, concurrency {args.concurrency}: {res.codes}")
    print(f"throughput {res.requests / res.wall_s:,.0f} req/s; accepted {res.accepted_per_s:,.0f} orders/s")
    print(f"latency ms: p50 {res.p50_ms:.1f}  p90 {res.p90_ms:.1f}  p99 {res.p99_ms:.1f}  max {res.max_ms:.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--units", type=int, default=0, help="units on sale (default: one per request)")
    uvloop.run(main(p.parse_args()))
