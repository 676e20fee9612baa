"""Admissions/s of one SKU against two SKUs on different Redis Cluster primaries, through one served gate.

What it measures: the same load (`bench/gate_load.py`'s client: distinct users and keys, every
request admitted) sent first to one SKU, then split over two SKUs whose slots two different
primaries serve, and the ratio of accepted orders/s. Issue 14 asks whether two SKUs on two
primaries sell about twice as fast as one: they would if Redis were the limit. On one box the
gate, the broker and the load generator share the cores with every Redis node, so the figure says
which it is here. It is a figure, not a test.

How to run (a Redis Cluster stack, a gate served with auth off, a worker is not needed):

    flashgate stack up --redis-cluster
    eval "$(flashgate stack env)"
    FLASHGATE_GATE_AUTH=off flashgate gate --workers 2 --port 8000 &
    .venv/bin/python bench/cluster_skus.py --port 8000 --requests 20000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter

import uvloop

from bench.gate_load import worker
from flashgate.orderindex import sku_slot
from flashgate.redis_url import connect, is_cluster, parse_cluster
from gate.breaker import Breaker
from gate.redis_cluster import ClusterBatcher
from tests.support.sales import Sale, put_sale


async def skus_on_two_primaries(url: str) -> tuple[str, str]:
    """Two fresh SKU names whose slots different primaries serve."""
    rt = ClusterBatcher(parse_cluster(url), lambda: Breaker(3, 0.5), timeout_s=2)
    await rt.start()
    await rt.close()
    tag = uuid.uuid4().hex[:8]
    first = f"bench-{tag}-0"
    owner = rt.slot_map.node(sku_slot(first))
    for n in range(1, 10_000):
        other = f"bench-{tag}-{n}"
        if rt.slot_map.node(sku_slot(other)) not in (None, owner):
            return first, other
    raise SystemExit("no second SKU on another primary: is REDIS_URL a cluster of several primaries?")


async def load(host: str, port: int, skus: list[str], requests: int, concurrency: int) -> tuple[float, Counter[int]]:
    """`requests` orders per SKU, all SKUs at once, `concurrency` connections per SKU; (seconds, answers)."""
    codes: Counter[int] = Counter()
    lat: list[float] = []
    began = time.perf_counter()
    runs = []
    for sku in skus:
        next_id = [0]
        runs += [worker(host, port, sku, next_id, requests, lat, codes) for _ in range(concurrency)]
    await asyncio.gather(*runs)
    return time.perf_counter() - began, codes


async def main(args: argparse.Namespace) -> None:
    url = os.environ["REDIS_URL"]
    if not is_cluster(url):
        raise SystemExit("REDIS_URL is not a redis+cluster:// URL (flashgate stack up --redis-cluster)")
    a, b = await skus_on_two_primaries(url)
    solo = f"{a}-solo"
    client = connect(url)
    for sku in (solo, a, b):
        await put_sale(client, Sale(sku=sku, units=args.requests))
    await client.aclose()
    half = args.concurrency // 2
    one_s, one = await load(args.host, args.port, [solo], args.requests, args.concurrency)
    two_s, two = await load(args.host, args.port, [a, b], args.requests // 2, half)
    one_rate, two_rate = one[202] / one_s, two[202] / two_s
    print(f"one SKU : {one[202]} accepted in {one_s:.2f} s = {one_rate:,.0f}/s  {dict(one)}")
    print(f"two SKUs: {two[202]} accepted in {two_s:.2f} s = {two_rate:,.0f}/s  {dict(two)} (on two primaries)")
    print(f"two / one = {two_rate / one_rate:.2f}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--requests", type=int, default=20_000, help="orders in each of the two runs")
    p.add_argument("--concurrency", type=int, default=64, help="connections in each run (split over two SKUs)")
    uvloop.run(main(p.parse_args()))
