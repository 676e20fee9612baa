"""Kafka broker CPU per order: one message per order (event version 1) against N orders per message (2).

What it measures: producers configured as the gate's (idempotent, acks=all, lz4, no key, the
gate's linger), one per gate process, produce order events at a fixed rate of orders per
second for a few seconds; the broker JVM's CPU over that window (from /proc), per order, next
to the produce requests the producers sent (librdkafka statistics). Variants run interleaved,
round by round, on a topic of their own, so load from other work spreads over all of them.
Only the producer and the broker run: no gate, no Redis, no worker. Run against the local stack:

    flashgate stack up && eval "$(flashgate stack env)"
    .venv/bin/python -m bench.broker_cost --per-message 1,15 --rate 5000 --rounds 5 [--out bench/results]

Prints the median per variant and the ratio of each variant to the first within each round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench import proc_cpu
from bench.kafka_clients import kafka_config
from bench.served import machine
from flashgate.events import SCHEMA_VERSION, OrderAccepted, OrdersAccepted, encode

TICK_S = 0.001


def payloads(sku: str, per_message: int) -> Callable[[], bytes]:
    """Fresh order events of `sku`: one version-1 message, or a version-2 message of `per_message` orders."""
    n = 0

    def next_payload() -> bytes:
        nonlocal n
        now = datetime.now(UTC)
        events = []
        for _ in range(per_message):
            n += 1
            events.append(OrderAccepted(SCHEMA_VERSION, uuid.uuid4(), sku, f"user-{n}", 1, f"k1-{n}", now))
        return encode(events[0]) if per_message == 1 else encode(OrdersAccepted.of(events))

    return next_payload


def one_run(bootstrap: str, broker: int, topic: str, per_message: int, args: argparse.Namespace) -> dict[str, Any]:
    """`args.producers` producers at `args.rate` orders/s together for `args.seconds`; broker CPU per order."""
    requests = [0] * args.producers

    def stats_of(i: int) -> Callable[[str], None]:
        def stats(raw: str) -> None:
            requests[i] = sum(b["req"].get("Produce", 0) for b in json.loads(raw)["brokers"].values())

        return stats

    role = {"enable.idempotence": True, "acks": "all", "compression.type": "lz4", "linger.ms": args.linger_ms}
    config = {**kafka_config(bootstrap, role), "statistics.interval.ms": 200}
    producers = [Producer({**config, "stats_cb": stats_of(i)}) for i in range(args.producers)]
    make = payloads(f"SKU-{topic}", per_message)
    failed = 0

    def delivered(err: Any, _msg: Any) -> None:
        nonlocal failed
        failed += err is not None

    for p in producers:  # connected, producer ids acquired: outside the window
        p.produce(topic, make(), on_delivery=delivered)
        p.flush(30)
    time.sleep(0.5)
    for p in producers:
        p.poll(0)
    requests_before = sum(requests)
    cpu_before, began = proc_cpu.process_cpu_s(broker), time.monotonic()
    orders = messages = 0
    while (elapsed := time.monotonic() - began) < args.seconds:
        while orders < elapsed * args.rate:
            producers[messages % args.producers].produce(topic, make(), on_delivery=delivered)
            messages += 1
            orders += per_message
        for p in producers:
            p.poll(0)
        time.sleep(TICK_S)
    left = sum(p.flush(30) for p in producers)
    cpu_s, window_s = proc_cpu.process_cpu_s(broker) - cpu_before, time.monotonic() - began
    time.sleep(0.5)  # the last statistics
    for p in producers:
        p.poll(0)
    return {
        "per_message": per_message,
        "orders": orders,
        "messages": messages,
        "undelivered": left + failed,
        "window_s": window_s,
        "produce_requests": sum(requests) - requests_before,
        "broker_cpu_s": cpu_s,
        "broker_us_per_order": cpu_s * 1e6 / orders,
    }


def summary(runs: list[dict[str, Any]], variants: list[int]) -> list[str]:
    base = variants[0]
    lines = ["orders/message  broker µs/order (median)  produce requests/s  ratio to the first, per round"]
    for v in variants:
        mine = [r for r in runs if r["per_message"] == v]
        firsts = [r for r in runs if r["per_message"] == base]
        ratios = [m["broker_us_per_order"] / f["broker_us_per_order"] for m, f in zip(mine, firsts, strict=True)]
        med = statistics.median(r["broker_us_per_order"] for r in mine)
        rps = statistics.median(r["produce_requests"] / r["window_s"] for r in mine)
        lines.append(f"{v:>14}  {med:>23.1f}  {rps:>18.0f}  {' '.join(f'{x:.3f}' for x in ratios)}"
                     f"  (median {statistics.median(ratios):.3f})")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--per-message", default="1,15", help="orders per message of each variant (1: version 1)")
    ap.add_argument("--rate", type=int, default=5000, help="orders/s of all producers together")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--producers", type=int, default=2, help="as many as gate processes")
    ap.add_argument("--linger-ms", type=int, default=10, help="the gate's default")
    ap.add_argument("--out", type=Path, help="folder for the JSON record (e.g. bench/results)")
    args = ap.parse_args()
    variants = [int(x) for x in args.per_message.split(",")]
    if not variants or min(variants) < 1 or min(args.rate, args.rounds, args.producers) < 1 or args.seconds <= 0:
        raise SystemExit("broker_cost: --per-message, --rate, --rounds and --producers must be >= 1, --seconds > 0")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise SystemExit('broker_cost: KAFKA_BOOTSTRAP is not set (eval "$(flashgate stack env)")')
    broker = proc_cpu.listening_pid(int(bootstrap.rsplit(":", 1)[1]))
    if broker is None:
        raise SystemExit(f"broker_cost: no local process listens on {bootstrap}: the broker's CPU is read from /proc")
    admin = AdminClient(kafka_config(bootstrap))
    topics = {v: f"bench-broker-{uuid.uuid4().hex[:8]}-{v}" for v in variants}
    for future in admin.create_topics([NewTopic(t, 6, 1) for t in topics.values()]).values():
        future.result(30)
    runs = []
    for r in range(args.rounds):
        for v in variants:
            run = {"round": r + 1, **one_run(bootstrap, broker, topics[v], v, args)}
            runs.append(run)
            us, sent, lost = run["broker_us_per_order"], run["produce_requests"], run["undelivered"]
            print(f"round {r + 1}, {v} per message: {us:.1f} µs/order, {sent} produce requests, {lost} undelivered")
    for future in admin.delete_topics(list(topics.values())).values():
        future.result(30)
    print("\n".join(summary(runs, variants)))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"broker-cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
        settings = {**vars(args), "out": str(args.out)}
        record = {"when": datetime.now(UTC).isoformat(), "machine": machine(), "settings": settings,
                  "runs": runs, "summary": summary(runs, variants)}  # fmt: skip
        path.write_text(json.dumps(record, indent=1))
        print(f"saved {path}")


if __name__ == "__main__":
    main()
