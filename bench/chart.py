"""PNGs of the benchmarks (matplotlib): a flash-sale run (answers per second, latency) and a soak run."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

COLORS = {"202": "tab:green", "409": "tab:orange", "429": "tab:purple", "503": "tab:red"}


def whole_seconds(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-second rows without the last one: the load stops inside it, so its few answers would
    draw a rate drop and a closed-loop latency spike (connections / answers) that never happened."""
    return series[:-1] if len(series) > 1 else series


def draw(result: dict[str, Any], path: Path) -> None:
    """Top: answers/s per status per second. Bottom: mean latency per second (Little's law) and run percentiles.

    wrk keeps one latency histogram per run, so the per-second latency is the closed-loop mean,
    connections / answers per second, which holds exactly while every connection has one
    request in flight; the run's p50/p99 from wrk's histogram are drawn as lines beside it.
    """
    gate = result["gate"]
    conns = int(result["settings"]["connections"])
    series = whole_seconds(gate["series"])
    t = [row["t"] for row in series]
    statuses = sorted({k for row in series for k in row if k != "t"})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for st in statuses:
        top.plot(t, [row.get(st, 0) for row in series], label=st, color=COLORS.get(st), marker=".")
    if "bare" in result:
        top.axhline(result["bare"]["offered_per_s"], color="grey", linestyle="--", label="bare endpoint req/s")
    if gate["sold_out_at_s"] is not None:
        for ax in (top, bottom):
            ax.axvline(gate["sold_out_at_s"], color="black", linestyle=":", label="sold out")
    top.set_ylabel("answers / s")
    top.set_title(f"flash sale {result['sku']}: stock {result['settings']['stock']}, {conns} connections")
    top.legend(loc="upper right")
    totals = [sum(v for k, v in row.items() if k != "t") for row in series]
    bottom.plot(t, [conns / n * 1e3 if n else None for n in totals], marker=".", label="mean (connections / answers)")
    bottom.axhline(gate["p50_ms"], color="tab:blue", linestyle="--", label=f"run p50 {gate['p50_ms']:.1f} ms")
    bottom.axhline(gate["p99_ms"], color="tab:red", linestyle="--", label=f"run p99 {gate['p99_ms']:.1f} ms")
    bottom.set_ylabel("latency, ms")
    bottom.set_xlabel("seconds since the first request (whole seconds: the last, partial one is left out)")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_soak(result: dict[str, Any], path: Path) -> None:
    """Four panels over the run's minutes: RSS per process; Redis dbsize (with its bound) and used_memory;
    outbox max, worker lag and the box's load per interval; answers/s per interval by status, with its p99.
    """
    samples, ks = result["samples"], result["summary"]["keyspace"]
    t = [smp["t_s"] / 60 for smp in samples]
    fig, (procs, redis, outbox, answers) = plt.subplots(4, 1, figsize=(10, 12), sharex=True)
    for pid, p in result["summary"]["processes"].items():
        procs.plot(t, [smp["procs"][pid]["rss"] / 2**20 if pid in smp["procs"] else None for smp in samples],
                   marker=".", label=f"{p['role']} {pid}")  # fmt: skip
    procs.set_ylabel("RSS, MiB")
    procs.set_ylim(bottom=0)
    procs.set_title(f"soak {result['sku']}: {result['settings']['rate_per_s']:g} orders/s, "
                    f"idempotency TTL {result['idem_ttl_s']} s — {'PASS' if result['passed'] else 'FAIL'}")  # fmt: skip
    procs.legend(loc="lower right", fontsize="small")
    redis.plot(t, [smp["redis"]["dbsize"] for smp in samples], marker=".", color="tab:blue", label="dbsize")
    redis.axhline(ks["bound"], color="tab:blue", linestyle="--", label=f"bound {ks['bound']:,.0f}")
    redis.set_ylabel("keys")
    redis.set_ylim(bottom=0)
    memory = redis.twinx()
    memory.plot(t, [smp["redis"]["used_memory"] / 2**20 for smp in samples], color="tab:gray", label="used_memory")
    memory.plot(t, [smp["redis"]["index_bytes"] / 2**20 for smp in samples], color="tab:gray", linestyle=":",
                label="order index")  # fmt: skip
    memory.set_ylabel("Redis memory, MiB")
    memory.set_ylim(bottom=0)
    redis.legend(loc="upper left", fontsize="small")
    memory.legend(loc="lower right", fontsize="small")
    outbox.plot(
        t, [smp["outbox"]["max"] for smp in samples], marker=".", color="tab:red", label="outbox max (1 s polls)"
    )
    outbox.plot(t, [smp["admitted"] - smp["rows"] for smp in samples], marker=".", color="tab:olive",
                label="admitted − rows in PostgreSQL")  # fmt: skip
    outbox.set_ylabel("entries / orders")
    outbox.legend(loc="upper left", fontsize="small")
    if all("loadavg_1m" in smp for smp in samples):
        box = outbox.twinx()
        box.plot(t, [smp["loadavg_1m"] for smp in samples], color="tab:gray", linestyle=":", label="box load (1 min)")
        box.set_ylabel("load average")
        box.set_ylim(bottom=0)
        box.legend(loc="upper right", fontsize="small")
    labels = sorted({k for smp in samples for k in smp["answers"]})
    for label in labels:
        rates = [None] + [(b["answers"].get(label, 0) - a["answers"].get(label, 0)) / (b["t_s"] - a["t_s"])
                          for a, b in itertools.pairwise(samples)]  # fmt: skip
        answers.plot(t, rates, marker=".", label=label, color=COLORS.get(label[:3]))
    answers.set_ylabel("answers / s")
    answers.set_ylim(bottom=0)
    answers.set_xlabel("minutes since the load started")
    latency = answers.twinx()
    latency.plot(t, [smp["latency_ms"]["p99"] for smp in samples], color="black", linestyle=":", label="p99 ms")
    latency.set_ylabel("p99 of the interval, ms")
    answers.legend(loc="lower left", fontsize="small")
    latency.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
