"""Worker drain rate: pre-fill a topic with N orders, then time one worker persisting them all.

What it measures: orders/s from a full Kafka topic into PostgreSQL through `flashgate worker`
(decode, one transaction per batch, offset commit), end to end from process start and in
steady state (first to last `persisted_at`). Run against the local stack:

    flashgate stack up && eval "$(flashgate stack env)"
    .venv/bin/python -m bench.drain --orders 200000 [--batch-max-rows 2000] [--workers 1]
    flashgate bench drain --orders 200000          # the same, from the CLI

Uses its own random topic, group and SKU, so it never disturbs other data.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flashgate.events import SCHEMA_VERSION, OrderAccepted, encode

FLASHGATE = str(Path(sys.executable).parent / "flashgate")


def prefill(bootstrap: str, topic: str, sku: str, count: int) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 20, "compression.type": "lz4", "batch.size": 1_000_000})  # fmt: skip
    now = datetime.now(UTC)
    began = time.perf_counter()
    for i in range(count):
        event = OrderAccepted(schema_version=SCHEMA_VERSION, order_id=uuid.uuid4(), sku=sku, user_id=f"u{i}",
                              qty=1, idempotency_key=f"k{i}", accepted_at=now)  # fmt: skip
        while True:
            try:
                producer.produce(topic, key=event.order_id.bytes, value=encode(event))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0
    return time.perf_counter() - began


async def drain(bootstrap: str, dsn: str, *, orders: int, partitions: int = 6, workers: int = 1,
                batch_max_rows: int = 2000) -> dict[str, float | int | bool]:  # fmt: skip
    """Pre-fill a fresh topic with `orders`, start `workers` workers, wait for every row; the rates."""
    name = f"bench{uuid.uuid4().hex[:8]}"
    topic = f"{name}.orders"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    for future in admin.create_topics([NewTopic(topic, partitions, 1), NewTopic(f"{name}.dlq", 1, 1)]).values():
        future.result(30)
    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO products (sku, name, units_on_sale) VALUES ($1, $1, $2)", name, orders)
    produce_s = prefill(bootstrap, topic, name, orders)
    env = {
        **os.environ,
        "FLASHGATE_WORKER_TOPIC": topic,
        "FLASHGATE_WORKER_DLQ_TOPIC": f"{name}.dlq",
        "FLASHGATE_WORKER_GROUP": f"{name}.writers",
        "FLASHGATE_WORKER_BATCH_MAX_ROWS": str(batch_max_rows),
    }
    began = time.perf_counter()
    procs = [
        subprocess.Popen([FLASHGATE, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        while await conn.fetchval("SELECT count(*) FROM orders WHERE sku = $1", name) < orders:
            await asyncio.sleep(0.1)
        total_s = time.perf_counter() - began
        steady_s = await conn.fetchval(
            "SELECT extract(epoch FROM max(persisted_at) - min(persisted_at))::float FROM orders WHERE sku = $1", name
        )
        sold = await conn.fetchval("SELECT units_sold FROM products WHERE sku = $1", name)
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        await conn.close()
    return {
        "orders": orders,
        "partitions": partitions,
        "workers": workers,
        "batch_max_rows": batch_max_rows,
        "prefill_per_s": orders / produce_s,
        "drain_total_s": total_s,
        "drain_per_s_from_start": orders / total_s,
        "drain_steady_s": steady_s,
        "drain_per_s_steady": orders / steady_s,
        "units_sold_ok": sold == orders,
    }


def report(r: dict[str, float | int | bool]) -> list[str]:
    cpu = platform.processor() or platform.machine()
    return [
        f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}",
        f"load: {r['orders']} orders, {r['partitions']} partitions, {r['workers']} worker(s), "
        f"batch_max_rows={r['batch_max_rows']}",
        f"prefill: {r['prefill_per_s']:,.0f} orders/s produced",
        f"drain: {r['drain_per_s_from_start']:,.0f} orders/s from worker start ({r['drain_total_s']:.2f} s, "
        "includes start-up)",
        f"drain: {r['drain_per_s_steady']:,.0f} orders/s steady state (first→last persisted_at, "
        f"{r['drain_steady_s']:.2f} s)",
        f"check: units_sold == rows -> {'OK' if r['units_sold_ok'] else 'MISMATCH'}",
    ]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-max-rows", type=int, default=2000)
    a = ap.parse_args()
    r = await drain(os.environ["KAFKA_BOOTSTRAP"], os.environ["DATABASE_URL"], orders=a.orders,
                    partitions=a.partitions, workers=a.workers, batch_max_rows=a.batch_max_rows)  # fmt: skip
    print("\n".join(report(r)))


if __name__ == "__main__":
    asyncio.run(main())
