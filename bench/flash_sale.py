"""The flash-sale benchmark: one sale, wrk against the running gate, drain, invariants, bare baseline.

What it measures (`flashgate bench flash-sale`, docs/benchmarks.md): the offered rate, 202/409/429
answers per second, errors, latency p50/p90/p99/max, time to sell out and the sold-out answer
rate of a gate that is already running (with its worker); then the end-to-end persistence lag
(accepted_at → persisted_at, from PostgreSQL) once the worker drained the sale, the invariant
check `flashgate reconcile verify --sku S --json`, and the same wrk load against a bare
endpoint (constant JSON) served by the same server with the same process count. Over the wrk
window it also takes the CPU budget (bench/budget.py): µs of CPU per accepted order for the gate,
Redis, Kafka, worker, PostgreSQL and wrk, and Redis's INFO view (script calls, µs per call).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench import budget, procstat
from bench.budget import deltas
from bench.figures import load_figures
from bench.open_loop import OpenLoopSettings, run_open_loop
from bench.proc_cpu import children_cpu_s
from bench.served import FLASHGATE, bare_argv, free_port, run_header, serve
from bench.wrk import WrkRun, cores, run_wrk
from flashgate import names
from flashgate.redis_url import connect

ROWS = "SELECT count(*) FROM orders WHERE sku = $1"
LAG = """SELECT count(*) AS n,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM persisted_at - accepted_at)) AS p50,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM persisted_at - accepted_at)) AS p99,
  max(extract(epoch FROM persisted_at - accepted_at)) AS max
FROM orders WHERE sku = $1"""


@dataclass(frozen=True)
class FlashSaleSettings:
    """One run's knobs; `workers` must match the gate's process count for the bare ratio to mean anything."""

    gate_url: str
    redis_url: str
    database_url: str
    stock: int = 10_000
    duration_s: int = 10
    # Seconds of the same load on the same sale before the measured window, not counted: a gate just
    # started and a broker whose JIT is still compiling cost more per order in their first seconds.
    warmup_s: int = 0
    connections: int = 128
    threads: int = 1
    users: int = 100_000
    per_user_limit: int = 0
    workers: int = 2
    bare: bool = True
    drain_timeout_s: float = 120.0
    out_dir: Path = Path("bench/results")
    kafka_bootstrap: str | None = None  # to find the broker for the CPU budget
    worker_pids: tuple[int, ...] = ()  # the worker group; empty: every `flashgate worker` on this Kafka
    save: bool = True  # write the JSON and PNG (the A/B driver keeps its runs in one file instead)
    # Open loop (the A/B driver's `--rate`): buyers arrive at this many per second whatever the gate
    # answers (vegeta, bench/open_loop.py) instead of wrk's `connections` waiting for their answers.
    rate: int | None = None


class BenchError(RuntimeError):
    """The benchmark could not run (gate not answering, drain timed out, ...)."""


def create_sale(sku: str, stock: int, per_user_limit: int = 0) -> None:
    """`flashgate sale create` (the PostgreSQL row first, then Redis), as an operator opens a sale."""
    argv = [FLASHGATE, "sale", "create", "--sku", sku, "--name", f"bench {sku}", "--stock", str(stock)]
    if per_user_limit:
        argv += ["--per-user-limit", str(per_user_limit)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise BenchError(f"flashgate sale create exited {done.returncode}: {(done.stderr or done.stdout).strip()}")


async def redis_state(redis_url: str, sku: str) -> tuple[int, int]:
    """(stock left, outbox entries) of a SKU."""
    r = connect(redis_url)
    try:
        return int(await r.get(names.stock_key(sku)) or 0), int(await r.xlen(names.outbox_key(sku)))
    finally:
        await r.aclose()


async def wait_drained(redis_url: str, database_url: str, sku: str, admitted: int, timeout_s: float) -> dict[str, Any]:
    """Poll until PostgreSQL holds `admitted` rows for the SKU and its outbox is empty; then the lag.

    `admitted` is what Redis took from the stock, so it also counts orders admitted while the load
    stopped (their 202 was never read) and orders admitted just before a Redis timeout (503).
    BenchError if that takes longer than `timeout_s`.
    """
    started = time.monotonic()
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            rows = int(await conn.fetchval(ROWS, sku))
            _, outbox = await redis_state(redis_url, sku)
            if rows >= admitted and outbox == 0:
                break
            if time.monotonic() - started > timeout_s:
                raise BenchError(f"not drained after {timeout_s} s: {rows}/{admitted} rows, outbox {outbox}")
            await asyncio.sleep(0.2)
        lag = await conn.fetchrow(LAG, sku)
        assert lag is not None  # an aggregate always returns one row
    finally:
        await conn.close()
    return {
        "drain_wait_s": time.monotonic() - started,
        "rows": rows,
        "lag_p50_ms": (lag["p50"] or 0) * 1e3,
        "lag_p99_ms": (lag["p99"] or 0) * 1e3,
        "lag_max_ms": float(lag["max"] or 0) * 1e3,
    }


def verify(sku: str) -> dict[str, Any]:
    """`flashgate reconcile verify --sku S --json` (contract: issue 5); exit 0 ok, 1 violation, 2 error."""
    done = subprocess.run([FLASHGATE, "reconcile", "verify", "--sku", sku, "--json"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
    return {"exit": done.returncode, "ok": done.returncode == 0, "report": report,
            "stderr": done.stderr.strip()[-500:]}  # fmt: skip


def _port(url: str) -> int:
    parsed = urlsplit(url)
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def _summary(run: WrkRun, *, sold_out: bool, server: str) -> dict[str, Any]:
    figures = load_figures(run.result, sold_out=sold_out).as_dict()
    figures["generator"] = {
        "wrk_cpu_s": run.wrk_cpu_s,
        "wrk_share_of_box": run.cpu_share(cores()),
        "box_busy_share": run.box_busy_s / (run.wall_s * cores()),
    }
    # CPU per answer does not depend on how much of the box other work took during the run.
    answers = max(1, figures["responses"])
    watched = {"server": f"{budget.CPU}{server}", "redis": f"{budget.CPU}redis"}
    cpu = {name: run.deltas[key] for name, key in watched.items() if key in run.deltas}
    figures["cpu"] = {f"{name}_cpu_s": s for name, s in cpu.items()} | {
        f"{name}_cpu_us_per_answer": s / answers * 1e6 for name, s in cpu.items()
    }
    return figures


def bare_run(s: FlashSaleSettings, log: Path) -> dict[str, Any]:
    port = free_port()
    with serve(bare_argv(port, s.workers), f"http://127.0.0.1:{port}/health/ready", log):
        groups = {"bare": procstat.port_roots(port)}
        run = run_wrk(f"http://127.0.0.1:{port}", sku="bare", users=s.users, connections=s.connections,
                      threads=s.threads, duration_s=s.duration_s, label="bare endpoint",
                      counters=lambda: budget.cpu_counters(groups))  # fmt: skip
    return _summary(run, sold_out=False, server="bare")


def flash_sale(s: FlashSaleSettings) -> dict[str, Any]:
    """Run everything; returns the raw result (also written as JSON next to its PNG chart)."""
    sku = f"fs-{uuid.uuid4().hex[:10]}"
    s.out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = run_header(sku, vars(s))
    create_sale(sku, s.stock, s.per_user_limit)
    groups = procstat.find_groups(gate_port=_port(s.gate_url), redis_url=s.redis_url, database_url=s.database_url,
                                  kafka_bootstrap=s.kafka_bootstrap, workers=s.worker_pids)  # fmt: skip
    gate = open_loop_gate(s, sku, groups) if s.rate is not None else closed_loop_gate(s, sku, groups)
    result["gate"] = gate
    admitted = s.stock - gate["stock_left"]
    result["persistence"] = asyncio.run(wait_drained(s.redis_url, s.database_url, sku, admitted, s.drain_timeout_s))
    result["verify"] = verify(sku)
    if s.bare:
        result["bare"] = bare_run(s, s.out_dir / "bare-server.log")
        result["ratio_gate_to_bare"] = {
            "all_answers": gate["offered_per_s"] / result["bare"]["offered_per_s"],
            "accepted": gate["accepted_per_s"] / result["bare"]["offered_per_s"],
        }
    if not s.save:
        return result
    stem = s.out_dir / f"flash-sale-{time.strftime('%Y%m%d-%H%M%S')}-{sku}"
    result["files"] = {"json": str(stem.with_suffix(".json")), "png": str(stem.with_suffix(".png"))}
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    from bench.chart import draw  # matplotlib is slow to import; only needed here

    draw(result, stem.with_suffix(".png"))
    return result


def closed_loop_gate(s: FlashSaleSettings, sku: str, groups: dict[str, list[int]]) -> dict[str, Any]:
    """wrk's `connections` against the gate (each waits for its answer), and the CPU budget over the window."""
    if s.warmup_s > 0:  # its orders are sold, drained and verified with the rest, not measured
        run_wrk(s.gate_url, sku=sku, users=s.users, connections=s.connections, threads=s.threads,
                duration_s=s.warmup_s, label=f"warm-up {sku}", keys="w")  # fmt: skip
    run = run_wrk(s.gate_url, sku=sku, users=s.users, connections=s.connections, threads=s.threads,
                  duration_s=s.duration_s, label=f"flash sale {sku}",
                  counters=lambda: budget.counters(groups, s.redis_url))  # fmt: skip
    stock_left, _ = asyncio.run(redis_state(s.redis_url, sku))
    gate = _summary(run, sold_out=stock_left == 0, server="gate")
    gate["stock_left"] = stock_left
    gate["budget"] = budget.budget({**run.deltas, f"{budget.CPU}wrk": run.wrk_cpu_s}, wall_s=run.wall_s,
                                   accepted=gate["accepted"], cores=cores(), found=groups)  # fmt: skip
    return gate


def open_loop_gate(s: FlashSaleSettings, sku: str, groups: dict[str, list[int]]) -> dict[str, Any]:
    """vegeta at `s.rate` buyers per second (bench/open_loop.py), and the CPU budget over the window.

    Latencies are taken from when each request was due (coordinated omission corrected); the
    budget's `wrk` row is the load generator's CPU (vegeta, this process's children), as for wrk.
    """
    assert s.rate is not None
    load = OpenLoopSettings(gate_url=s.gate_url, sku=sku, rate=s.rate, duration_s=s.duration_s, users=s.users)
    if s.warmup_s > 0:  # sold, drained and verified with the rest, not measured
        run_open_loop(replace(load, duration_s=s.warmup_s), progress=_quiet)
    before, generator_before, started = budget.counters(groups, s.redis_url), children_cpu_s(), time.monotonic()
    summary = run_open_loop(load, progress=_quiet)["summary"]
    wall_s = time.monotonic() - started
    delta = deltas(before, budget.counters(groups, s.redis_url))
    return open_loop_figures(summary, delta, generator_cpu_s=children_cpu_s() - generator_before, wall_s=wall_s,
                             stock_left=asyncio.run(redis_state(s.redis_url, sku))[0], found=groups)  # fmt: skip


def open_loop_figures(
    summary: dict[str, Any],
    delta: dict[str, float],
    *,
    generator_cpu_s: float,
    wall_s: float,
    stock_left: int,
    found: dict[str, list[int]],
) -> dict[str, Any]:
    """An open-loop run's summary and counter deltas → the gate figures the A/B driver compares."""
    by_status = {int(code): n for code, n in summary["answers"].items()}
    return {
        "load": "open",
        **summary,
        "by_status": by_status,
        "stock_left": stock_left,
        "budget": budget.budget({**delta, f"{budget.CPU}wrk": generator_cpu_s}, wall_s=wall_s,
                                accepted=by_status.get(202, 0), cores=cores(), found=found),
    }  # fmt: skip


def _quiet(_line: str) -> None:
    """Progress lines of an open-loop run inside a bigger one: not printed."""


def report_lines(r: dict[str, Any]) -> list[str]:
    """The human summary printed by the CLI."""
    g, p, m = r["gate"], r["persistence"], r["machine"]
    gen = g["generator"]
    lines = [
        f"machine: {m['cores']} cores, {m['cpu_model']}, Python {m['python']}; "
        f"load before {r['box_before']['loadavg']}",
        f"sale {r['sku']}: stock {r['settings']['stock']}, {r['settings']['connections']} connections, "
        f"{r['settings']['duration_s']} s, {r['settings']['users']} buyers",
        f"offered {g['offered_per_s']:,.0f} req/s; answers {g['by_status']}; errors {g['errors']} "
        f"{g['server_errors'] or ''}",
        f"202/s {g['accepted_per_s']:,.0f} (selling phase)  409/s {g['conflict_per_s']:,.0f}  "
        f"429/s {g['rate_limited_per_s']:,.0f}  sold-out phase {g['sold_out_phase_per_s'] or 0:,.0f} answers/s",
        f"latency ms: p50 {g['p50_ms']:.1f}  p90 {g['p90_ms']:.1f}  p99 {g['p99_ms']:.1f}  max {g['max_ms']:.1f}",
        f"time to sell out: {g['time_to_sell_out_s']:.2f} s" if g["time_to_sell_out_s"] else
        f"not sold out ({g['stock_left']} left)",
        f"persistence lag (accepted_at → persisted_at, {p['rows']} rows): p50 {p['lag_p50_ms']:.0f} ms  "
        f"p99 {p['lag_p99_ms']:.0f} ms  max {p['lag_max_ms']:.0f} ms",
        f"generator: wrk used {gen['wrk_share_of_box']:.0%} of the box (box busy {gen['box_busy_share']:.0%})",
        "CPU per answer: " + ", ".join(f"{k.removesuffix('_cpu_us_per_answer')} {v:,.0f} µs"
                                        for k, v in g["cpu"].items() if k.endswith("per_answer")),
        *budget.budget_lines(g["budget"]),
        f"verify: {'ok' if r['verify']['ok'] else 'FAILED'} (exit {r['verify']['exit']}) {r['verify']['stderr']}",
    ]  # fmt: skip
    if "bare" in r:
        b, ratio = r["bare"], r["ratio_gate_to_bare"]
        lines.append(f"bare endpoint: {b['offered_per_s']:,.0f} req/s p99 {b['p99_ms']:.1f} ms, server CPU "
                     f"{b['cpu'].get('server_cpu_us_per_answer', 0):,.0f} µs/answer → gate/bare "
                     f"{ratio['all_answers']:.2f} (all answers), {ratio['accepted']:.2f} (202s)")  # fmt: skip
    if "files" in r:
        lines.append(f"raw: {r['files']['json']}  chart: {r['files']['png']}")
    return lines
