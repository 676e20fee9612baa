"""Producer linger sweep: accepted orders/s and p99 of a served gate for each `linger.ms`.

What it measures: for every linger value, `flashgate gate --workers W` (auth off) is started
with FLASHGATE_GATE_LINGER_MS set, loaded with bench/gate_load.py (fresh sale, distinct buyers and
keys), and stopped. Rounds interleave the settings so that load from other work on the box
spreads over all of them; each run records the load average and busiest processes beside
its figures. Run against the local stack:

    flashgate stack up && eval "$(flashgate stack env)"
    .venv/bin/python -m bench.linger_sweep --lingers 0,1,2,5,10 --rounds 3 --requests 20000 --concurrency 64

Writes every run to --out (JSON) and prints min–max per setting.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import uvloop

from bench import gate_load
from bench.served import box_snapshot, free_port, gate_argv, machine, serve


def one_run(linger_ms: int, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    port = free_port()
    env = {"FLASHGATE_GATE_AUTH": "off", "FLASHGATE_GATE_LINGER_MS": str(linger_ms), "FLASHGATE_LOG_LEVEL": "WARNING"}
    box = box_snapshot()
    with serve(gate_argv(port, args.workers), f"http://127.0.0.1:{port}/health/ready", log, env):
        res = uvloop.run(gate_load.run("127.0.0.1", port, requests=args.requests, concurrency=args.concurrency))
    return {"linger_ms": linger_ms, "accepted_per_s": res.accepted_per_s, "p50_ms": res.p50_ms,
            "p99_ms": res.p99_ms, "max_ms": res.max_ms, "codes": res.codes, "box_before": box}  # fmt: skip


def summary(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["linger_ms  accepted/s (min-max)  p99 ms (min-max)  runs"]
    for linger in sorted({r["linger_ms"] for r in runs}):
        mine = [r for r in runs if r["linger_ms"] == linger]
        acc = [r["accepted_per_s"] for r in mine]
        p99 = [r["p99_ms"] for r in mine]
        lines.append(
            f"{linger:>9}  {min(acc):>8,.0f}-{max(acc):<8,.0f}     {min(p99):>6.1f}-{max(p99):<6.1f}     {len(mine)}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--lingers", default="0,1,2,5,10")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/results/linger_sweep.json"))
    args = ap.parse_args()
    lingers = [int(x) for x in args.lingers.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".gate.log")
    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        order = lingers if rnd % 2 == 0 else lingers[::-1]
        for linger in order:
            run = one_run(linger, args, log)
            runs.append(run)
            load1 = run["box_before"]["loadavg"][0]
            print(f"round {rnd + 1} linger {linger:>2} ms: {run['accepted_per_s']:,.0f} accepted/s "
                  f"p99 {run['p99_ms']:.1f} ms (load1 {load1:.2f})", flush=True)  # fmt: skip
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), "settings": vars(args) | {
        "out": str(args.out)}, "runs": runs}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print("\n".join(summary(runs)))
    print(f"raw results: {args.out}")


if __name__ == "__main__":
    main()
