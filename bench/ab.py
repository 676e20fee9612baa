"""Interleaved A/B of two checkouts of this repository: flash-sale figures and the CPU budget, B/A per round.

What it measures: for each round, for A then B, one `flashgate gate --workers W` and one
`flashgate worker` running THAT checkout's code (this venv's python with PYTHONPATH=<checkout>,
cwd=<checkout>, FLASHGATE_GATE_AUTH=off, the stack from the environment), one flash-sale run
(bench/flash_sale.py, bare baseline off by default) on a fresh SKU, then both are stopped. The
load is wrk's closed loop (`connections`, each waiting for its answer), or with `rate` an open
loop: buyers arriving at that rate whatever the gate answers (vegeta, bench/open_loop.py). It
proves which code ran: bench/probe/sitecustomize.py reports the file of gate.app, worker.main and
flashgate.names.LUA_DIR from every process, granian's forked workers included, and a mismatch
aborts; Redis's script cache is flushed before each gate starts, and the checkout's Lua scripts
found in it afterwards are listed. Each variant (start, run, drain, stop) holds the shared bench
lock (/tmp/flashgate-bench.lock, flock), so do not wrap this command in `flock` yourself.

    flashgate stack up && eval "$(flashgate stack env)"
    git worktree add /tmp/base HEAD
    .venv/bin/python -m bench.ab --a /tmp/base --b . --rounds 3 --stock 200000 --duration 10

Prints medians per variant, B/A within each round and the median of those ratios (bench/ab_stats.py);
raw results go to bench/results/ab-<timestamp>.json.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from bench import ab_stats, procstat
from bench.budget import node_clients
from bench.flash_sale import FlashSaleSettings, flash_sale
from bench.kafka_clients import kafka_config
from bench.served import FLASHGATE, box_snapshot, free_port, gate_argv, machine, serve, stop
from flashgate.names import WRITERS_GROUP

PROBE_DIR = Path(__file__).resolve().with_name("probe")


class AbError(RuntimeError):
    """A variant could not run, or did not run the code it was meant to."""


@dataclass(frozen=True)
class AbSettings:
    """The two checkouts and the flash-sale knobs shared by every run."""

    a: Path
    b: Path
    rounds: int = 3
    stock: int = 200_000
    duration_s: int = 10
    warmup_s: int = 3  # unmeasured load before each run (bench/flash_sale.py)
    connections: int = 128
    threads: int = 1
    users: int = 100_000
    workers: int = 2  # gate processes
    b_workers: int | None = None  # B's gate processes, when they are what is compared (default: `workers`)
    bare: bool = False
    lock: Path | None = Path("/tmp/flashgate-bench.lock")
    out_dir: Path = Path("bench/results")
    a_env: tuple[tuple[str, str], ...] = ()  # extra environment of A's gate and worker (e.g. a setting to compare)
    b_env: tuple[tuple[str, str], ...] = ()
    # "ab": A then B in every round; "alternate": A B, then B A, … The second run of a round has an
    # advantage (an A/A run: Kafka 0.74, total 0.94 of the first; docs/benchmarks.md), which alternating cancels.
    order: str = "ab"
    rate: int | None = None  # open loop: buyers per second (vegeta) instead of wrk's closed loop of `connections`


def round_order(order: str, rnd: int) -> tuple[str, str]:
    """Which variant runs first in round `rnd` (1-based)."""
    return ("B", "A") if order == "alternate" and rnd % 2 == 0 else ("A", "B")


def check_checkout(path: Path) -> Path:
    """An absolute checkout with the packages the gate and worker import."""
    path = path.resolve()
    missing = [p for p in ("gate", "worker", "flashgate/names.py", "ops/cli.py") if not (path / p).exists()]
    if not lua_dir(path).is_dir():
        missing.append("flashgate/lua")
    if missing:
        raise AbError(f"{path} is not a flashgate checkout (missing {', '.join(missing)})")
    return path


def lua_dir(checkout: Path) -> Path:
    """Where a checkout keeps its Lua scripts: flashgate/lua/ (package data), or lua/ in checkouts before it moved."""
    packaged = checkout / "flashgate" / "lua"
    return packaged if packaged.is_dir() else checkout / "lua"


@contextmanager
def bench_lock(path: Path | None) -> Iterator[None]:
    """Hold the shared bench lock (the one `flock /tmp/flashgate-bench.lock CMD` takes)."""
    if path is None:
        yield
        return
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {path} (someone else is measuring)", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def variant_env(checkout: Path, probe_file: Path) -> dict[str, str]:
    return {"PYTHONPATH": f"{checkout}{os.pathsep}{PROBE_DIR}", "FLASHGATE_AB_PROBE": str(probe_file),
            "FLASHGATE_GATE_AUTH": "off", "FLASHGATE_LOG_LEVEL": "WARNING"}  # fmt: skip


def wait_assigned(bootstrap: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Until the writers' group is stable with partitions assigned (the previous variant's worker has left)."""
    admin = AdminClient(kafka_config(bootstrap, {"log_level": 3}))  # errors only: no info lines on close
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            desc = admin.describe_consumer_groups([WRITERS_GROUP], request_timeout=5)[WRITERS_GROUP].result()
            if str(desc.state).endswith("STABLE") and any(m.assignment.topic_partitions for m in desc.members):
                return
        except Exception:  # the group may not exist yet: keep polling until the deadline
            pass
        time.sleep(0.3)
    raise AbError(f"worker pid {proc.pid} got no partitions within {timeout_s} s (exit {proc.poll()})")


@contextmanager
def running_worker(env: dict[str, str], cwd: Path, log: Path, bootstrap: str) -> Iterator[int]:
    """`flashgate worker` until the block ends (SIGTERM: it commits and leaves the group)."""
    with log.open("ab") as out:
        proc = subprocess.Popen([FLASHGATE, "worker"], stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env={**os.environ, **env})  # fmt: skip
        try:
            wait_assigned(bootstrap, proc)
            yield proc.pid
        finally:
            stop(proc)


def loaded_code(probe_file: Path, pids: dict[str, list[int]], checkout: Path, deadline_s: float = 15) -> dict[str, Any]:
    """The probe's lines for the gate's serving processes and the worker; AbError unless all are from `checkout`."""
    want = {"gate.app": pids["gate"], "worker.main": pids["worker"]}
    deadline = time.monotonic() + deadline_s
    while True:
        seen: dict[int, dict[str, str]] = {}
        for line in probe_file.read_text().splitlines() if probe_file.exists() else []:
            rec = json.loads(line)
            lua = {"LUA_DIR": rec["lua_dir"]} if rec["lua_dir"] else {}
            seen.setdefault(rec["pid"], {}).update(rec["modules"] | lua)
        missing = [(mod, pid) for mod, ps in want.items() for pid in ps
                   if mod not in seen.get(pid, {}) or "LUA_DIR" not in seen.get(pid, {})]  # fmt: skip
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if missing:
        raise AbError(f"the probe did not report {missing} (see {probe_file})")
    report = {pid: seen[pid] for ps in want.values() for pid in ps}
    foreign = {
        pid: files for pid, files in report.items() if any(not f.startswith(f"{checkout}/") for f in files.values())
    }
    if foreign:
        raise AbError(f"processes ran code from outside {checkout}: {foreign}")
    return {str(pid): files for pid, files in report.items()}


def lua_in_redis(redis_url: str, checkout: Path) -> list[str]:
    """The checkout's Lua scripts that Redis has in its script cache (flushed before the gate started)."""
    # SHA1 is how Redis names a cached script.
    scripts = {p.stem: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(lua_dir(checkout).glob("*.lua"))}
    present = [False] * len(scripts)
    for r in node_clients(redis_url):  # on a cluster, a script is loaded by the nodes that ran it
        try:
            exists = r.script_exists(*scripts.values()) if scripts else []
        finally:
            r.close()
        present = [a or bool(b) for a, b in zip(present, exists, strict=True)]
    return [name for name, loaded in zip(scripts, present, strict=True) if loaded]


def one_run(s: AbSettings, variant: str, checkout: Path, rnd: int, work: Path) -> dict[str, Any]:
    """Start this checkout's gate and worker, run one flash sale, stop them; the run's record."""
    redis_url, database_url, bootstrap = (os.environ[k] for k in ("REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP"))
    tag = f"r{rnd}-{variant}"
    probe_file = work / f"{tag}.probe.jsonl"
    env = {**variant_env(checkout, probe_file), **dict(s.a_env if variant == "A" else s.b_env)}
    workers = s.workers if variant == "A" or s.b_workers is None else s.b_workers
    port = free_port()
    with bench_lock(s.lock):
        box = box_snapshot()
        for r in node_clients(redis_url):
            try:
                r.script_flush()
            finally:
                r.close()
        with (
            running_worker(env, checkout, work / f"{tag}.worker.log", bootstrap) as worker_pid,
            serve(gate_argv(port, workers), f"http://127.0.0.1:{port}/health/ready", work / f"{tag}.gate.log",
                  env, cwd=checkout),
        ):  # fmt: skip
            pids = {"gate": _serving_pids(port), "worker": [worker_pid]}
            code = loaded_code(probe_file, pids, checkout)
            settings = FlashSaleSettings(
                gate_url=f"http://127.0.0.1:{port}", redis_url=redis_url, database_url=database_url,
                stock=s.stock, duration_s=s.duration_s, warmup_s=s.warmup_s, connections=s.connections,
                threads=s.threads, users=s.users, workers=workers, bare=s.bare, out_dir=work, kafka_bootstrap=bootstrap,
                worker_pids=(worker_pid,), save=False, rate=s.rate,
            )  # fmt: skip
            result = flash_sale(settings)
        lua = lua_in_redis(redis_url, checkout)
    if not lua:
        raise AbError(f"none of {lua_dir(checkout)}/*.lua is in Redis's script cache after the {tag} run")
    return {"round": rnd, "variant": variant, "checkout": str(checkout), "box_before": box, "code": code,
            "lua_in_redis": lua, "figures": ab_stats.figures(result), "result": result}  # fmt: skip


def _serving_pids(port: int) -> list[int]:
    """The processes holding the gate's listening socket (granian's workers, which run the app)."""
    roots = procstat.port_roots(port)
    return sorted(procstat.descendants(roots, procstat.read_stats()) - set(roots)) or roots


def run_ab(s: AbSettings) -> dict[str, Any]:
    """Every round, A then B (or alternated, `order`); the raw record is rewritten after each run, so a failure
    keeps what ran."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = (s.out_dir / f"ab-{stamp}").resolve()  # the variants run with cwd=<checkout>
    work.mkdir(parents=True, exist_ok=True)
    path = s.out_dir / f"ab-{stamp}.json"
    record: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), "files": str(path),
                              "settings": {k: str(v) for k, v in vars(s).items()}, "runs": []}  # fmt: skip
    for rnd in range(1, s.rounds + 1):
        for variant in round_order(s.order, rnd):
            run = one_run(s, variant, s.a if variant == "A" else s.b, rnd, work)
            record["runs"].append(run)
            f = run["figures"]
            print(f"round {rnd} {variant}: {f['accepted/s'] or 0:,.0f} accepted/s  p99 {f['p99 ms'] or 0:.1f} ms  "
                  f"total {f['µs/202 total'] or 0:,.0f} µs/202  gate {f['µs/202 gate'] or 0:,.0f} µs/202  "
                  f"verify {'ok' if run['result']['verify']['ok'] else 'FAILED'}  "
                  f"(load1 {run['box_before']['loadavg'][0]:.2f})", flush=True)  # fmt: skip
            record["summary"] = ab_stats.summarize(record["runs"])
            path.write_text(json.dumps(record, indent=1, default=str))
    return record


def lines(record: dict[str, Any]) -> list[str]:
    s = record["settings"]
    b_workers = s.get("b_workers", "None")
    sides = [f"A = {s['a']}", f"B = {s['b']}"]
    if b_workers not in ("None", s["workers"]):
        sides = [f"{sides[0]} (gate ×{s['workers']})", f"{sides[1]} (gate ×{b_workers})"]
    return [*sides, *ab_stats.summary_lines(record["summary"]), f"raw: {record['files']}"]


def main() -> None:
    from bench.cli import ab_command

    ab_command(prog_name="python -m bench.ab")


if __name__ == "__main__":
    main()
