"""Detached process handling on real short-lived processes (no services involved)."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from ops.stack import process
from ops.stack.errors import ServiceFailed
from ops.stack.kafka_service import new_cluster_id


def spawn_python(tmp_path: Path, code: str) -> int:
    return process.spawn([sys.executable, "-c", code], log_path=tmp_path / "p.log", pid_path=tmp_path / "p.pid")


def test_spawn_read_and_kill(tmp_path: Path) -> None:
    pid = spawn_python(tmp_path, "import time; time.sleep(60)")
    assert process.read_pid(tmp_path / "p.pid") == pid
    process.kill_tree(pid)
    assert process.read_pid(tmp_path / "p.pid") is None


def test_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    pid = spawn_python(tmp_path, "import time; time.sleep(60)")
    ticks = process.start_ticks(pid)
    assert ticks is not None
    for started in ("ticks:1", f"ticks:{ticks + 1}", "12345.0", "ticks:x", ""):  # same pid, another start
        (tmp_path / "p.pid").write_text(f"{pid} {started}\n")
        assert process.read_pid(tmp_path / "p.pid") is None, started
    process.kill_tree(pid)


def test_the_start_time_does_not_move_with_the_wall_clock(tmp_path: Path) -> None:
    """The pid file keeps kernel ticks since boot: a stepped wall clock changes psutil's create_time
    (boot time + ticks) but not them. A pid file of an older launcher (a wall-clock time) still reads."""
    pid = spawn_python(tmp_path, "import time; time.sleep(60)")
    recorded = (tmp_path / "p.pid").read_text().split()
    assert recorded == [str(pid), f"ticks:{process.start_ticks(pid)}"]
    (tmp_path / "p.pid").write_text(f"{pid} {psutil.Process(pid).create_time()!r}\n")
    assert process.read_pid(tmp_path / "p.pid") == pid
    process.kill_tree(pid)
    assert process.read_pid(tmp_path / "p.pid") is None


def test_terminate_escalates_to_kill(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    pid = spawn_python(tmp_path, code)
    process.wait_ready("p", lambda: "ready" in (tmp_path / "p.log").read_text(), pid=lambda: pid,
                       log_path=tmp_path / "p.log", timeout_s=10)  # fmt: skip
    process.terminate_tree(pid, timeout_s=0.3)
    assert not process.is_alive(pid)


def test_wait_ready_reports_early_exit(tmp_path: Path) -> None:
    pid = spawn_python(tmp_path, "print('boom: bad config')")
    with pytest.raises(ServiceFailed, match=r"exited during start-up.*boom: bad config"):
        process.wait_ready(
            "svc",
            lambda: False,
            pid=lambda: process.read_pid(tmp_path / "p.pid"),
            log_path=tmp_path / "p.log",
            timeout_s=10,
        )
    assert not process.is_alive(pid)


def test_wait_ready_deadline(tmp_path: Path) -> None:
    pid = spawn_python(tmp_path, "import time; time.sleep(60)")
    with pytest.raises(ServiceFailed, match="did not become ready within"):
        process.wait_ready("svc", lambda: False, pid=lambda: pid, log_path=tmp_path / "p.log", timeout_s=0.2)
    process.kill_tree(pid)


def test_cluster_id_shape() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
