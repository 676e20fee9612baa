"""The gate app alone: CPU per order of POST /v1/orders without an HTTP server, at a fixed concurrency.

What it measures: the app the servers run (gate/app.py `create_app`, its lifespan started, on
uvloop) is called straight through ASGI by `concurrency` coroutines in the same process, each
placing one order at a time for a fresh buyer and key, against the real Redis and Kafka of the
environment. No sockets to the client, no granian, no wrk: what is left is the app's own Python
and its round trips. It reports the event-loop thread's CPU and the whole process's CPU (which
adds librdkafka's threads) per order over the measured orders, after a warm-up, and orders per
admit.lua call. The generator's own work (scope dicts, keys) is in the figures too, about 20-30 µs
per order here; it is the same for every checkout, so A/B ratios are the app's.

Why: the served gate's CPU per order mixes the app with the server and a box shared with Redis,
Kafka and wrk. This isolates the app, so a change to the order path can be weighed in seconds,
and the concurrency shows how much of an order's cost is per batch (docs/benchmarks.md).

Run: `flashgate bench app --sku S --orders 8000 --concurrency 128` with the stack's environment,
and a sale S with enough stock; the app runs with auth off (the generator names buyers with
X-User-Id). Run it from the checkout to measure (`PYTHONPATH=<checkout>`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import uvloop

WARMUP_ORDERS = 500


class AppBenchError(Exception):
    """The run cannot measure what it promises (orders refused, no sale)."""


@dataclass(frozen=True)
class AppRun:
    orders: int
    concurrency: int
    statuses: dict[int, int]
    loop_thread_us: float  # event-loop thread CPU per order
    process_us: float  # whole process (adds librdkafka's threads) per order
    orders_per_s: float
    orders_per_admit_call: float

    def line(self) -> str:
        return (
            f"{self.orders} orders at concurrency {self.concurrency}: loop thread {self.loop_thread_us:.0f} µs/order, "
            f"process {self.process_us:.0f} µs/order, {self.orders_per_s:,.0f} orders/s, "
            f"{self.orders_per_admit_call:.1f} orders per admit.lua call, answers {dict(sorted(self.statuses.items()))}"
        )


def _scope(sku: bytes, n: int, run: bytes) -> tuple[dict[str, Any], bytes]:
    body = b'{"sku":"%s","qty":1}' % sku
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"x-user-id", b"app-%s-%d" % (run, n)),
        (b"idempotency-key", b"%s-%d" % (run, n)),
    ]
    return {"type": "http", "method": "POST", "path": "/v1/orders", "headers": headers}, body


async def _place(app: Any, sku: bytes, n: int, run: bytes, statuses: Counter[int]) -> None:
    scope, body = _scope(sku, n, run)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    await app(scope, receive, send)


async def _load(app: Any, sku: bytes, numbers: range, concurrency: int, run: bytes, statuses: Counter[int]) -> None:
    todo = iter(numbers)

    async def client() -> None:
        for n in todo:  # each client takes the next order when its last one was answered
            await _place(app, sku, n, run, statuses)

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def _run(sku: str, orders: int, concurrency: int) -> AppRun:
    from gate.app import create_app  # the checkout on PYTHONPATH
    from gate.settings import GateSettings

    app = create_app(GateSettings.from_env({**os.environ, "FLASHGATE_GATE_AUTH": "off"}))
    calls: list[int] = []
    run = b"%x" % time.time_ns()
    warm: Counter[int] = Counter()
    statuses: Counter[int] = Counter()
    cpu = thread = wall = 0.0
    async with app.lifespan():  # raising in here would come out wrapped in the lifespan's task group
        await _load(app, sku.encode(), range(WARMUP_ORDERS), concurrency, run, warm)
        if set(warm) == {202}:
            admission = app.state.gate.admission
            real = admission.admit_batch

            async def counted(sku_: str, reqs: Any, order_ids: Any) -> Any:
                calls.append(len(reqs))
                return await real(sku_, reqs, order_ids)

            admission.admit_batch = counted
            cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
            await _load(app, sku.encode(), range(WARMUP_ORDERS, WARMUP_ORDERS + orders), concurrency, run, statuses)
            cpu, thread, wall = time.process_time() - cpu0, time.thread_time() - thread0, time.perf_counter() - wall0
    if set(warm) != {202}:
        raise AppBenchError(f"warm-up answers {dict(warm)}: is {sku} on sale, with stock?")
    return AppRun(
        orders=orders,
        concurrency=concurrency,
        statuses=dict(statuses),
        loop_thread_us=thread * 1e6 / orders,
        process_us=cpu * 1e6 / orders,
        orders_per_s=orders / wall,
        orders_per_admit_call=sum(calls) / len(calls) if calls else 0.0,
    )


def run_app(sku: str, orders: int, concurrency: int) -> AppRun:
    return uvloop.run(_run(sku, orders, concurrency))


def sweep(sku: str, orders: int, concurrencies: list[int], rounds: int) -> list[AppRun]:
    """Each concurrency once per round, in turn, so the box's drift spreads over all of them."""
    return [run_app(sku, orders, c) for _, c in itertools.product(range(rounds), concurrencies)]
