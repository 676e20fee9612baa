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
    m.requests.labels("202", "accepted").inc(int(sys.argv[2]))
    m.inflight.inc(int(sys.argv[2]))
    m.admission_seconds.observe(0.01)
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
