"""Detached service processes: spawn with a pid file, probe liveness, stop gently or kill.

A service outlives the `flashgate` command that started it (own session, output to a log
file). Liveness ignores zombies and checks the recorded start time, so a recycled pid is
never mistaken for our service. The start time is the kernel's, in clock ticks since boot
(/proc/<pid>/stat), not a wall-clock time: when the wall clock is stepped (NTP, a VM's time
sync), a wall-clock start time computed again no longer matches the recorded one, and the
launcher would take its own running services for stopped ones (2026-12-01: a CI run's `stack
stop` left Redis running after a ~22 s step, and the next `stack start` found the port taken).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from ops.stack.errors import ServiceFailed


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> int:
    """Start `argv` in its own session with output appended to `log_path`; return its pid.

    With `pid_path`, writes "<pid> ticks:<start ticks>" there so `read_pid` can verify it later.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            user=user,
            cwd=cwd,
        )
    # The child belongs to the service from here on; forget it so Python does not warn
    # about a subprocess it would never wait for.
    proc.returncode = 0
    if pid_path is not None:
        pid_path.write_text(f"{proc.pid} {TICKS}{start_ticks(proc.pid)}\n")
    return proc.pid


TICKS = "ticks:"


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count from the last ")".
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def read_pid(pid_path: Path) -> int | None:
    """The live pid recorded in `pid_path`, or None if the file is missing or the process gone.

    A pid file of an older launcher holds a wall-clock start time instead of ticks; it is still read.
    """
    try:
        pid, started = pid_path.read_text().split()[:2]
        if started.startswith(TICKS):
            same = start_ticks(int(pid)) == int(started.removeprefix(TICKS))
        else:
            same = abs(psutil.Process(int(pid)).create_time() - float(started)) <= 0.01
    except (OSError, ValueError, psutil.Error):
        return None
    return int(pid) if same and is_alive(int(pid)) else None


def is_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_tree(pid: int) -> list[psutil.Process]:
    """`pid` and all its descendants (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and its descendants at once, as a crash would, and wait until they are gone."""
    procs = process_tree(pid)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    _wait_gone(procs, timeout_s=10.0)


def terminate_tree(pid: int, *, timeout_s: float) -> None:
    """SIGTERM `pid`, wait up to `timeout_s` for it and its children, then SIGKILL what is left."""
    procs = process_tree(pid)
    if not procs:
        return
    with contextlib.suppress(psutil.Error):
        procs[0].send_signal(signal.SIGTERM)
    _wait_gone(procs, timeout_s=timeout_s)
    kill_tree(pid)
    for proc in procs:  # children re-parented before the root died
        if is_alive(proc.pid):
            kill_tree(proc.pid)


def _wait_gone(procs: list[psutil.Process], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(is_alive(p.pid) for p in procs):
            return
        time.sleep(0.05)


def wait_ready(
    name: str,
    probe: Callable[[], bool],
    *,
    pid: Callable[[], int | None],
    log_path: Path,
    timeout_s: float,
) -> None:
    """Poll `probe` until it answers True; fail early if the process exits, or at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        if probe():
            return
        if pid() is None:
            raise ServiceFailed(f"{name} exited during start-up; see {log_path}: {last_line(log_path)}")
        if time.monotonic() > deadline:
            raise ServiceFailed(f"{name} did not become ready within {timeout_s:.0f} s; see {log_path}")
        time.sleep(0.1)


def last_line(path: Path) -> str:
    """The last non-empty line of a log file, for one-line error messages."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip()[:300] if lines else "(empty log)"
