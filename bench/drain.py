"""Worker drain rate: pre-fill a topic with N orders, then time one worker persisting them all.

What it measures: orders/s from a full Kafka topic into PostgreSQL through `flashgate worker`
(decode, one transaction per batch, offset commit), end to end from process start, in steady
state (first to last `persisted_at`), and over a measured window (first poll that sees a row to
the poll that sees them all) with the CPU each process group spent in it, in µs per drained
order, read from /proc: the worker process(es), PostgreSQL (postmaster + backends, reaped and
live) and the Kafka broker JVM. Run against the local stack, one measurement at a time on a
shared box:

    flashgate stack up && eval "$(flashgate stack env)"
    flock /tmp/flashgate-bench.lock .venv/bin/python -m bench.drain --orders 100000 \
        [--batch-max-rows 2000] [--workers 1] [--orders-per-message 1] [--label NAME] [--out bench/results] \
        [--worker-src DIR]
    flashgate bench drain --orders 200000          # the same, from the CLI (no JSON file)

`--worker-src DIR` runs the workers with DIR first on PYTHONPATH (e.g. a worktree of the
previous commit), so A and B of a comparison run through the same harness. `--out` writes
`drain-<time>-<label>.json`. Uses its own random topic, group and SKU, so it never disturbs
other data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from bench import proc_cpu
from bench.kafka_clients import kafka_config
from flashgate.events import SCHEMA_VERSION, OrderAccepted, OrdersAccepted, encode

FLASHGATE = str(Path(sys.executable).parent / "flashgate")


def prefill(bootstrap: str, topic: str, sku: str, count: int, per_message: int = 1) -> float:
    """`count` orders into `topic`: one version-1 message each, or version-2 messages of `per_message` orders."""
    role = {"enable.idempotence": True, "acks": "all", "linger.ms": 20, "compression.type": "lz4"}
    producer = Producer({**kafka_config(bootstrap, role), "batch.size": 1_000_000})
    now = datetime.now(UTC)
    began = time.perf_counter()
    for first in range(0, count, per_message):
        events = [OrderAccepted(schema_version=SCHEMA_VERSION, order_id=uuid.uuid4(), sku=sku, user_id=f"u{i}",
                                qty=1, idempotency_key=f"k{i}", accepted_at=now)
                  for i in range(first, min(first + per_message, count))]  # fmt: skip
        value = encode(events[0]) if per_message == 1 else encode(OrdersAccepted.of(events))
        while True:
            try:
                producer.produce(topic, key=events[0].order_id.bytes, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0
    return time.perf_counter() - began


Result = dict[str, float | int | bool | str]
POLL_S = 0.05


async def drain(bootstrap: str, dsn: str, *, orders: int, partitions: int = 6, workers: int = 1,
                batch_max_rows: int = 2000, worker_src: str | None = None,
                worker_log: Path | None = None, per_message: int = 1) -> Result:  # fmt: skip
    """Pre-fill a fresh topic with `orders`, start `workers` workers, wait for every row; rates and CPU.

    The window rate and the CPU figures cover the polls that saw the first and the last row;
    `units_sold` is polled (one primary-key read) rather than counting rows, so the poll itself
    costs PostgreSQL next to nothing.
    """
    name = f"bench{uuid.uuid4().hex[:8]}"
    topic = f"{name}.orders"
    admin = AdminClient(kafka_config(bootstrap))  # must outlive its futures
    for future in admin.create_topics([NewTopic(topic, partitions, 1), NewTopic(f"{name}.dlq", 1, 1)]).values():
        future.result(30)
    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO products (sku, name, units_on_sale) VALUES ($1, $1, $2)", name, orders)
    postmaster = proc_cpu.parent_pid(await conn.fetchval("SELECT pg_backend_pid()"))
    broker = proc_cpu.listening_pid(int(bootstrap.rsplit(":", 1)[1]))
    if broker is None:
        raise RuntimeError(f"no local process listens on {bootstrap}: the Kafka CPU figure needs the local stack")
    produce_s = prefill(bootstrap, topic, name, orders, per_message)
    env = {
        **os.environ,
        "FLASHGATE_TOPIC": topic,
        "FLASHGATE_WORKER_DLQ_TOPIC": f"{name}.dlq",
        "FLASHGATE_GROUP": f"{name}.writers",
        "FLASHGATE_WORKER_BATCH_MAX_ROWS": str(batch_max_rows),
    }
    if worker_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [worker_src, os.environ.get("PYTHONPATH")]))
    began = time.perf_counter()
    log_file = worker_log.open("ab") if worker_log else None  # closed in finally
    out = log_file or subprocess.DEVNULL
    procs = [subprocess.Popen([FLASHGATE, "worker"], env=env, stdout=out, stderr=out) for _ in range(workers)]
    groups: dict[str, tuple[str, list[int]]] = {
        "worker": ("process", [p.pid for p in procs]),
        "postgres": ("tree", [postmaster]),
        "kafka": ("process", [broker] if broker else []),
    }
    try:
        sold = 0
        while sold == 0:
            sold = await conn.fetchval("SELECT units_sold FROM products WHERE sku = $1", name)
            if sold == 0:
                await asyncio.sleep(POLL_S)
        window = (time.perf_counter(), sold, proc_cpu.sample(groups))
        while sold < orders:
            await asyncio.sleep(POLL_S)
            sold = await conn.fetchval("SELECT units_sold FROM products WHERE sku = $1", name)
        ended, cpu_end = time.perf_counter(), proc_cpu.sample(groups)
        total_s = ended - began
        rows = await conn.fetchval("SELECT count(*) FROM orders WHERE sku = $1", name)
        steady_s = await conn.fetchval(
            "SELECT extract(epoch FROM max(persisted_at) - min(persisted_at))::float FROM orders WHERE sku = $1", name
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        if log_file:
            log_file.close()
        await conn.close()
    window_s, window_orders = ended - window[0], sold - window[1]
    cpu_us = {g: (cpu_end[g] - window[2][g]) * 1e6 / window_orders for g in groups}
    return {
        "orders": orders,
        "partitions": partitions,
        "workers": workers,
        "batch_max_rows": batch_max_rows,
        "orders_per_message": per_message,
        "prefill_per_s": orders / produce_s,
        "drain_total_s": total_s,
        "drain_per_s_from_start": orders / total_s,
        "drain_steady_s": steady_s,
        "drain_per_s_steady": orders / steady_s,
        "window_s": window_s,
        "window_orders": window_orders,
        "drain_per_s_window": window_orders / window_s,
        **{f"cpu_us_per_order_{g}": us for g, us in cpu_us.items()},
        "cpu_us_per_order_total": sum(cpu_us.values()),
        "pids": f"worker={[p.pid for p in procs]} postmaster={postmaster} kafka={broker}",
        "units_sold_ok": sold == orders == rows,
    }


def report(r: Result) -> list[str]:
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
        f"drain: {r['drain_per_s_window']:,.0f} orders/s over the measured window "
        f"({r['window_orders']} orders in {r['window_s']:.2f} s)",
        "cpu µs/order in the window: "
        + ", ".join(f"{g} {r[f'cpu_us_per_order_{g}']:.1f}" for g in ("worker", "postgres", "kafka", "total")),
        f"check: units_sold == rows -> {'OK' if r['units_sold_ok'] else 'MISMATCH'}",
    ]


def _commit_of(folder: str | None) -> str:
    rev = subprocess.run(["git", "-C", folder or ".", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False)  # fmt: skip
    return rev.stdout.strip()


def save(r: Result, out_dir: Path, label: str, worker_src: str | None = None) -> Path:
    """Write the result as `drain-<time>-<label>.json`, with its label, command, the harness's commit
    and the commit the workers ran (that of `worker_src` when given, else the harness's)."""
    record = {
        **r,
        "label": label,
        "command": " ".join(sys.argv),
        "commit": _commit_of(None),
        "worker_commit": _commit_of(worker_src),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"drain-{datetime.now(UTC):%Y%m%d-%H%M%S}-{label}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-max-rows", type=int, default=2000)
    ap.add_argument("--orders-per-message", type=int, default=1,
                    help="1: version-1 messages, one order each; N > 1: version-2 messages of N orders")  # fmt: skip
    ap.add_argument("--worker-src", help="put this folder first on the workers' PYTHONPATH (A/B against a worktree)")
    ap.add_argument("--label", default="run", help="name of the variant, kept in the JSON and its file name")
    ap.add_argument("--worker-log", type=Path, help="append the workers' output to this file")
    ap.add_argument("--out", type=Path, help="folder for the JSON record (e.g. bench/results)")
    a = ap.parse_args()
    r = await drain(os.environ["KAFKA_BOOTSTRAP"], os.environ["DATABASE_URL"], orders=a.orders,
                    partitions=a.partitions, workers=a.workers, batch_max_rows=a.batch_max_rows,
                    worker_src=a.worker_src, worker_log=a.worker_log,
                    per_message=a.orders_per_message)  # fmt: skip
    print("\n".join(report(r)))
    if a.out:
        print(f"saved {save(r, a.out, a.label, a.worker_src)}")


if __name__ == "__main__":
    asyncio.run(main())
