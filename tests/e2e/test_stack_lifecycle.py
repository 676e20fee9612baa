"""The launcher as a user drives it: up, status, down leaving nothing behind, up again; clear errors."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ops.stack.ports import free_port, port_in_use
from tests.support.stackctl import FLASHGATE, StackHandle, flashgate


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parent is private to root, and PostgreSQL runs as `postgres`.
    path = Path(tempfile.mkdtemp(prefix="flashgate-lifecycle-"))
    path.chmod(0o755)
    yield path
    flashgate("stack", "down", "--state-dir", str(path), check=False)
    shutil.rmtree(path, ignore_errors=True)


def live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_up_down_up(state_dir: Path) -> None:
    stack = StackHandle.up(state_dir, "--with-prometheus")
    pids = stack.pids()
    assert all(pids.values()), pids
    assert set(pids) == {"redis", "postgres", "kafka", "prometheus"}
    listening = {c.laddr.ip for c in psutil.Process(pids["prometheus"]).net_connections() if c.status == "LISTEN"}
    assert listening == {"127.0.0.1"}
    children = [c.pid for p in pids.values() if p for c in psutil.Process(p).children(recursive=True)]
    status = stack.run("status")
    assert status.returncode == 0
    assert [line.split()[4:] for line in status.stdout.splitlines()[1:]] == [["-"]] * 4  # single nodes: no ROLE

    stack.run("up")  # idempotent: nothing restarts
    assert stack.pids() == pids

    stack.run("down")
    assert not [p for p in [*pids.values(), *children] if p and live(p)]
    stopped = stack.run("status", check=False)
    assert stopped.returncode == 1
    assert stopped.stdout.count("stopped") == 4

    again = StackHandle.up(state_dir)
    assert again.env == stack.env  # the saved ports are reused
    assert all(again.pids().values())


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1
    err = done.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = flashgate(
            "stack", "up", "--state-dir", str(tmp_path), "--free-ports", "--redis-port", str(port), check=False
        )
    err = one_line_error(done)
    assert f"port {port}" in err
    assert "--redis-port" in err


def test_taken_port_of_a_cluster_node_is_a_one_line_error(state_dir: Path) -> None:
    first = free_port()
    while any(port_in_use(first + n) for n in range(6)):  # nodes 1-3 take first .. first + 5
        first = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", first + 2))  # node 2's broker port
        s.listen()
        # No --free-ports: it would pick free ports for nodes 2 and 3 instead of first + 2 … first + 5.
        done = flashgate(
            "stack", "up", "--state-dir", str(state_dir), "--kafka-brokers", "3",
            "--redis-port", str(free_port()), "--postgres-port", str(free_port()),
            "--kafka-port", str(first), "--kafka-controller-port", str(first + 1), check=False,
        )  # fmt: skip
    err = one_line_error(done)
    assert f"kafka-2: port {first + 2} is already in use" in err
    assert "--kafka-port" in err
    assert not (state_dir / "kafka-1" / "kafka-1.pid").exists()  # nothing was started


def test_missing_binary_names_the_package(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}
    done = subprocess.run(
        [FLASHGATE, "stack", "up", "--state-dir", str(tmp_path / "s"), "--free-ports"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    err = one_line_error(done)
    assert "apt-get install -y redis-server" in err


def test_unknown_service_is_rejected(tmp_path: Path) -> None:
    done = flashgate("stack", "kill", "mysql", "--state-dir", str(tmp_path), check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_taken_prometheus_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = flashgate(
            "stack", "up", "--state-dir", str(tmp_path), "--free-ports", "--with-prometheus",
            "--prometheus-port", str(port), check=False,
        )  # fmt: skip
    err = one_line_error(done)
    assert f"prometheus: port {port}" in err
    assert "--prometheus-port" in err


def test_missing_prometheus_names_the_package(tmp_path: Path) -> None:
    # Everything on PATH but prometheus: the launcher checks before it starts anything.
    bare = tmp_path / "bin"
    bare.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name != "prometheus" and not (bare / tool.name).exists():
                (bare / tool.name).symlink_to(tool)
    done = subprocess.run(
        [FLASHGATE, "stack", "up", "--state-dir", str(tmp_path / "s"), "--free-ports", "--with-prometheus"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bare)},
        timeout=120,
        check=False,
    )
    err = one_line_error(done)
    assert "apt-get install -y prometheus" in err
    assert not (tmp_path / "s" / "redis" / "redis.pid").exists()
