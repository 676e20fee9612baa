"""Gate metrics across processes: any process renders the sum; a dead process's live gauges are dropped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import os, sys
from gate.metrics import GateMetrics
m = GateMetrics(os.environ["PROMETHEUS_MULTIPROC_DIR"])
mode = sys.argv[1]
if mode == "work":
    m.requests[("202", "accepted")] += int(sys.argv[2])
    m.inflight = int(sys.argv[2])
    m.admission_seconds.observe(0.01)
    m.publish()
elif mode == "render-alive":  # publish, then render while alive: its own process_* figures are in
    m.publish()
    print("pid", os.getpid())
    sys.stdout.write(m.render().decode())
elif mode == "render":
    from gate.metrics import forget_dead_processes
    print("dead", ",".join(map(str, forget_dead_processes(os.environ["PROMETHEUS_MULTIPROC_DIR"]))))
    sys.stdout.write(m.render().decode())
"""


def child(folder: str, *args: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_render_sums_processes_and_forgets_the_live_gauges_of_dead_ones() -> None:
    folder = tempfile.mkdtemp(prefix="flashgate-metrics-test-")
    try:
        child(folder, "work", "3")
        child(folder, "work", "4")
        workers = {f.name.split("_")[-1].removesuffix(".db") for f in Path(folder).glob("gauge_livesum_*.db")}
        assert len(workers) == 2
        out = child(folder, "render")
        assert 'flashgate_gate_requests_total{outcome="accepted",status="202"} 7.0' in out
        assert "flashgate_gate_admission_duration_seconds_count 2.0" in out
        # Both workers exited: their in-flight gauges are gone, their counters still count.
        dead = next(line for line in out.splitlines() if line.startswith("dead "))
        assert set(dead.removeprefix("dead ").split(",")) == workers
        assert "flashgate_gate_inflight_requests 0.0" in out
        left = {f.name for f in Path(folder).glob("gauge_live*.db")}
        assert not [name for name in left if any(f"_{pid}.db" in name for pid in workers)]
        assert len(list(Path(folder).glob("counter_*.db"))) == 3
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_render_has_process_figures_of_live_server_processes_only() -> None:
    folder = tempfile.mkdtemp(prefix="flashgate-metrics-test-")
    try:
        child(folder, "work", "1")  # exits: no process figures for it
        out = child(folder, "render-alive")
        pid = next(line for line in out.splitlines() if line.startswith("pid ")).removeprefix("pid ")
        samples = {line.split(" ")[0] for line in out.splitlines() if line.startswith("process_")}
        names = {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "process_max_fds", "process_start_time_seconds"}  # fmt: skip
        assert samples == {f'{name}{{pid="{pid}"}}' for name in names}
        rss = next(line for line in out.splitlines() if line.startswith("process_resident_memory_bytes"))
        assert float(rss.split(" ")[1]) > 10_000_000  # a real process's figure
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_tallies_publish_the_same_samples_as_direct_observations() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from gate.metrics import HistogramTally

    bounds = (0.001, 0.01, 0.1)
    values = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.5, 2.0, 0.001]
    direct_reg, bulk_reg = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("h", "h", buckets=bounds, registry=direct_reg)
    bulk = Histogram("h", "h", buckets=bounds, registry=bulk_reg)
    tally = HistogramTally(bounds)
    for v in values:
        direct.observe(v)
        tally.observe(v)
    tally.publish_to(bulk)
    tally.publish_to(bulk)  # a second publish adds nothing: the tally was reset

    def samples(registry: CollectorRegistry) -> list[bytes]:
        return [line for line in generate_latest(registry).splitlines() if b"_created" not in line]

    assert samples(bulk_reg) == samples(direct_reg)
    assert b'h_bucket{le="0.001"} 3.0' in samples(bulk_reg)  # "le": 0.001 itself falls in the 0.001 bucket
