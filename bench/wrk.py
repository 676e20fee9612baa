"""Run wrk with bench/flash_sale.lua under a progress bar; parse its JSON and measure its CPU share.

wrk (Debian package `wrk`, C + LuaJIT) is the load generator because it costs about half the
CPU per request of our asyncio generator on this box (docs/benchmarks.md), so more of the two
cores go to the server under test. Its CPU time is read from the kernel's accounting of
reaped children (getrusage), so the share it took from the box is reported with every run.
Other counters (the pipeline's CPU per process group, Redis INFO: bench/budget.py) are read by a
callable just before wrk starts and just after it exits, so they cover the same window.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from bench.budget import deltas
from bench.proc_cpu import children_cpu_s

SCRIPT = Path(__file__).with_name("flash_sale.lua")
MARK = "FLASHSALE_JSON "


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class WrkRun:
    """One wrk run: its JSON result, its own CPU, the box's CPU and the counters' deltas over its wall time."""

    result: dict[str, Any]
    wall_s: float
    wrk_cpu_s: float
    box_busy_s: float  # all processes on the box (user + system, every core)
    deltas: dict[str, float]  # after − before of every counter the caller asked for (bench/budget.py)

    def cpu_share(self, cores: int) -> float:
        """wrk's share of the whole box's CPU capacity during the run."""
        return self.wrk_cpu_s / (self.wall_s * cores)


def run_wrk(
    url: str,
    *,
    sku: str,
    users: int,
    connections: int,
    threads: int,
    duration_s: int,
    label: str,
    counters: Callable[[], dict[str, float]] | None = None,
    keys: str = "k",
) -> WrkRun:
    """`wrk -c C -t T -d S --latency -s flash_sale.lua URL -- SKU USERS KEYS` with a rich progress bar.

    KEYS prefixes the Idempotency-Keys: runs on one SKU need different ones, or the later run's
    requests replay the earlier run's orders.
    """
    exe = shutil.which("wrk")
    if exe is None:
        raise WrkError("wrk is not installed: apt-get install wrk (make bootstrap does it)")
    argv = [exe, "-c", str(connections), "-t", str(threads), "-d", f"{duration_s}s", "--timeout", "10s",
            "-s", str(SCRIPT), url, "--", sku, str(users), keys]  # fmt: skip
    before_children = children_cpu_s()
    before = counters() if counters else {}
    box_before = psutil.cpu_times()
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, refresh_per_second=2) as bar:  # low refresh: the box is small
        task = bar.add_task(label, total=duration_s)
        while proc.poll() is None:
            bar.update(task, completed=min(duration_s, time.monotonic() - started))
            time.sleep(0.5)
    out, err = proc.communicate()
    wall = time.monotonic() - started
    box_after = psutil.cpu_times()
    after = counters() if counters else {}
    after_children = children_cpu_s()
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {err.strip() or out.strip()}")
    line = next((ln for ln in out.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise WrkError(f"wrk printed no result:\n{out}{err}")
    cpu = after_children - before_children
    busy = _busy(box_after) - _busy(box_before)
    return WrkRun(json.loads(line[len(MARK) :]), wall, cpu, busy, deltas(before, after))


def _busy(t: Any) -> float:
    idle = float(t.idle + getattr(t, "iowait", 0.0) + getattr(t, "steal", 0.0))
    return float(sum(t)) - idle - float(getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0))


def cores() -> int:
    return os.cpu_count() or 1
