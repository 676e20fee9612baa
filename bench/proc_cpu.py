"""CPU time of local processes read from /proc, for "µs of CPU per order" figures in benchmarks.

Linux only; the stack's services run as real local processes, so their pids are found here:
PostgreSQL through a backend's parent (the postmaster), Kafka as the process listening on the
bootstrap port. Reading another user's /proc/<pid>/stat needs no privilege.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterable, Mapping
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # comm (field 2) may hold spaces and parentheses: split after its last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_s(pid: int) -> float:
    """utime + stime of `pid` (all its threads), in seconds."""
    f = _stat_fields(pid)
    return (int(f[11]) + int(f[12])) * _TICK_S  # fields 14, 15 of proc(5)


def children_cpu_s() -> float:
    """User + system CPU of this process's children that have exited and were waited for (a load generator), in s."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu_s(pid: int) -> float:
    """CPU of `pid`, of its reaped children (cutime + cstime) and of its live children, in seconds.

    This is the PostgreSQL reading: backends that exit move from "live" into the postmaster's
    cutime/cstime, so the sum stays continuous across connection churn. Grandchildren that are
    still alive are not counted (PostgreSQL has none).
    """
    f = _stat_fields(pid)
    total = sum(int(v) for v in f[11:15]) * _TICK_S  # utime, stime, cutime, cstime
    return total + sum(process_cpu_s(child) for child in children(pid))


def children(pid: int) -> list[int]:
    """Live direct children of `pid` (vanished ones are skipped)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == pid:  # field 4: ppid
                out.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return out


def parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def listening_pid(port: int) -> int | None:
    """The pid holding a TCP socket listening on `port` (IPv4 or IPv6), or None."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and targets & _open_files(entry):
            return int(entry.name)
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        lines = path.read_text().splitlines()[1:] if path.exists() else []
        for cols in (line.split() for line in lines):
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(cols[9])
    return inodes


def _open_files(proc: Path) -> set[str]:
    out: set[str] = set()
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:  # gone, or not ours to read
        return out
    for fd in fds:
        # A busy process (the broker rolls segment files) closes fds while we read them: skip
        # those one by one, or the broker itself would be missed.
        with contextlib.suppress(OSError):
            out.add(os.readlink(fd))
    return out


def sample(groups: Mapping[str, tuple[str, Iterable[int]]]) -> dict[str, float]:
    """CPU seconds per group: `{name: ("process" | "tree", pids)}` -> `{name: seconds}`."""
    out: dict[str, float] = {}
    for name, (kind, pids) in groups.items():
        read = tree_cpu_s if kind == "tree" else process_cpu_s
        out[name] = sum(read(p) for p in pids)
    return out
