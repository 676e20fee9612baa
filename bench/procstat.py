"""CPU seconds of the pipeline's process groups, read from /proc (Linux): gate, Redis, Kafka, worker, PostgreSQL.

A group is a set of root pids and all their descendants. Its CPU at one instant is the sum over
its live processes of utime + stime + cutime + cstime (`man 5 proc`): a child that exits and is
reaped moves its time into its parent's cutime/cstime, so the difference of two instants also
counts the PostgreSQL backends (and Redis AOF-rewrite forks) that came and went in between, and
a process alive at both instants is never counted twice. Threads are inside their process.

How each group is found (`find_groups`):
- gate: the processes listening on the gate's port, walked up through the parents that run the
  same server (granian's forked workers hold the socket, `flashgate gate` is their parent with the
  same command line; uvicorn's spawned workers run `multiprocessing.spawn`);
- Redis, Kafka, PostgreSQL: the same, from the port of REDIS_URL, KAFKA_BOOTSTRAP, DATABASE_URL
  (the postmaster's backends and background processes are its children);
- worker: pids given, or every process whose command line is `… flashgate worker …` and whose
  environment (when readable) has our KAFKA_BOOTSTRAP, so other stacks' workers on a shared box
  are left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from flashgate.redis_url import is_cluster, parse_cluster

PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>/stat this module needs; times in clock ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int  # reaped children, recursively
    cstime: int

    @property
    def ticks(self) -> int:
        """Own CPU plus that of every reaped descendant."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> Stat:
    """One /proc/<pid>/stat line. The command name is in parentheses and may hold spaces and ')'."""
    head, _, tail = text.rpartition(")")
    fields = tail.split()  # fields[0] is field 3 (state) of proc(5)
    return Stat(
        pid=int(head.split("(", 1)[0]),
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
    )


def parse_nul_list(raw: bytes) -> list[str]:
    """/proc/<pid>/cmdline or environ: NUL-separated, usually NUL-terminated."""
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_flashgate_worker(argv: list[str]) -> bool:
    """`…/flashgate worker …` (the console script, however python is spelled before it)."""
    return any(Path(arg).name == "flashgate" and argv[i + 1 : i + 2] == ["worker"] for i, arg in enumerate(argv))


def same_server(child: list[str], parent: list[str]) -> bool:
    """Whether `parent` is the server process that started worker `child` (fork: same argv; spawn)."""
    return bool(child) and (child == parent or any(a.startswith("from multiprocessing") for a in child))


def descendants(roots: Iterable[int], stats: Mapping[int, Stat]) -> set[int]:
    """The roots (those alive) and every live descendant."""
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    seen: set[int] = set()
    todo = [pid for pid in roots if pid in stats]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return seen


def tree_cpu_s(roots: Iterable[int], stats: Mapping[int, Stat], clk_tck: int) -> float:
    """CPU seconds of the roots' trees at the instant `stats` was read (see the module docstring)."""
    return sum(stats[pid].ticks for pid in descendants(roots, stats)) / clk_tck


def read_stats() -> dict[int, Stat]:
    """Every process on the box (processes that exit while being read are skipped)."""
    stats: dict[int, Stat] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = parse_stat((entry / "stat").read_text())
            except (OSError, ValueError, IndexError):
                continue
    return stats


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _argv(pid: int) -> list[str]:
    try:
        return parse_nul_list((PROC / str(pid) / "cmdline").read_bytes())
    except OSError:
        return []


def _ancestors_of_self() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = psutil.Process(pid).ppid()
        except psutil.Error:
            break
    return pids


def port_roots(port: int) -> list[int]:
    """Roots of the process tree serving a local TCP port: listeners walked up while the parent is their server.

    The measuring process and its ancestors are never taken.
    """
    try:
        listeners = {c.pid for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}  # fmt: skip
    except psutil.AccessDenied:
        return []
    mine = _ancestors_of_self()
    roots: set[int] = set()
    for pid in listeners:
        while True:
            try:
                parent = psutil.Process(pid).ppid()
            except psutil.Error:
                break
            if parent <= 1 or parent in mine or not same_server(_argv(pid), _argv(parent)):
                break
            pid = parent
        roots.add(pid)
    return sorted(roots)


def url_port(url: str, default: int) -> int:
    return urlsplit(url).port or default


def redis_ports(redis_url: str) -> list[int]:
    """The port of one Redis, or of every seed node of a `redis+cluster://` URL (the stack lists them all)."""
    if is_cluster(redis_url):
        return [port for _, port in parse_cluster(redis_url).seeds]
    return [url_port(redis_url, 6379)]


def bootstrap_port(bootstrap: str) -> int:
    """The port of the first `host:port` of KAFKA_BOOTSTRAP."""
    return int(bootstrap.split(",")[0].rsplit(":", 1)[1])


def worker_pids(kafka_bootstrap: str | None) -> list[int]:
    """Every `flashgate worker` process on the box that uses this Kafka (when its environment is readable)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not is_flashgate_worker(parse_nul_list((entry / "cmdline").read_bytes())):
                continue
            env = dict(kv.split("=", 1) for kv in parse_nul_list((entry / "environ").read_bytes()) if "=" in kv)
        except PermissionError:
            env = {}
        except OSError:
            continue
        if kafka_bootstrap is None or env.get("KAFKA_BOOTSTRAP", kafka_bootstrap) == kafka_bootstrap:
            found.append(int(entry.name))
    return sorted(found)


def find_groups(
    *, gate_port: int, redis_url: str, database_url: str, kafka_bootstrap: str | None, workers: Iterable[int] = ()
) -> dict[str, list[int]]:
    """Root pids per group (an empty list: not found, e.g. no worker running)."""
    groups = {
        "gate": port_roots(gate_port),
        "redis": sorted({pid for port in redis_ports(redis_url) for pid in port_roots(port)}),
        "kafka": port_roots(bootstrap_port(kafka_bootstrap)) if kafka_bootstrap else [],
        "worker": sorted(workers) or worker_pids(kafka_bootstrap),
        "postgres": port_roots(url_port(database_url, 5432)),
    }
    return groups


def groups_cpu_s(groups: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """CPU seconds per group now, from one pass over /proc."""
    stats, tck = read_stats(), clock_ticks()
    return {name: tree_cpu_s(roots, stats, tck) for name, roots in groups.items()}
