"""The CPU budget of a flash-sale run: µs of CPU per accepted order (202) for each process group.

What it measures: over the wrk window only, the CPU the gate, Redis, Kafka, the worker(s),
PostgreSQL and wrk itself used (`bench/procstat.py`: /proc, reaped children included), divided
by the 202s wrk read, and Redis's own view of the same window from INFO: used_cpu_sys +
used_cpu_user (all of redis-server) and INFO commandstats for the script commands (calls and
usec of EVALSHA/EVAL/FCALL). Those are reported apart on purpose: the gate may admit many orders
per script call, so "Redis µs per accepted order" (its whole CPU / 202s) and "µs per EVALSHA
call" are different figures. Printed by `flashgate bench flash-sale` and in its JSON under
`gate.budget`.

`counters()` returns monotonic counters by name; the harness reads them just before wrk starts
and just after it exits, and everything here works on the difference (pure, unit-tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis

from bench import procstat
from flashgate.redis_url import is_cluster, parse_cluster

GROUPS = ("gate", "redis", "kafka", "worker", "postgres", "wrk")
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")
CPU = "cpu."  # counter prefixes: cpu.<group> (s), redis.cpu (s), cmd.<command>.calls / .usec
CMD = "cmd."


def redis_counters(info: Mapping[str, Any]) -> dict[str, float]:
    """Counters from INFO (redis-py's parsed dict of sections `cpu` and `commandstats`)."""
    out = {"redis.cpu": float(info["used_cpu_sys"]) + float(info["used_cpu_user"])}
    for key, stat in info.items():
        if key.startswith("cmdstat_") and isinstance(stat, Mapping):
            name = key.removeprefix("cmdstat_").lower()
            out[f"{CMD}{name}.calls"] = float(stat["calls"])
            out[f"{CMD}{name}.usec"] = float(stat["usec"])
    return out


def cpu_counters(groups: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """One reading: CPU seconds per process group, as cpu.<group>."""
    return {f"{CPU}{name}": cpu for name, cpu in procstat.groups_cpu_s(groups).items()}


def node_clients(redis_url: str) -> list[redis.Redis]:
    """A (sync) client per Redis node: the one Redis, or every node of a cluster (`redis+cluster://`)."""
    if is_cluster(redis_url):
        return [redis.Redis(host=host, port=port) for host, port in parse_cluster(redis_url).seeds]
    return [redis.Redis.from_url(redis_url)]


def counters(groups: Mapping[str, Iterable[int]], redis_url: str) -> dict[str, float]:
    """One reading: CPU seconds per process group and Redis's INFO counters (summed over a cluster's nodes)."""
    out = cpu_counters(groups)
    total: dict[str, float] = {}
    for r in node_clients(redis_url):  # every node's counters, summed over a cluster
        try:
            info: dict[str, Any] = {**r.info("cpu"), **r.info("commandstats")}
        finally:
            r.close()
        for key, value in redis_counters(info).items():
            total[key] = total.get(key, 0.0) + value
    return out | total


def deltas(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """after − before per counter; a counter first seen at the end (a command first called) starts at 0."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def _per(numerator: float, denominator: float, scale: float = 1e6) -> float | None:
    return numerator / denominator * scale if denominator > 0 else None


def budget(
    delta: Mapping[str, float], *, accepted: int, wall_s: float, cores: int, found: Mapping[str, list[int]]
) -> dict[str, Any]:
    """The table: per group CPU seconds, µs per accepted order and share of the box; then the total.

    `delta` holds cpu.<group> for every group measured (wrk's comes from getrusage); a group
    with no process found is reported as such and left out of the total.
    """
    rows: dict[str, dict[str, Any]] = {}
    total = 0.0
    for name in GROUPS:
        cpu = delta.get(f"{CPU}{name}")
        if cpu is None or (name != "wrk" and not found.get(name)):
            rows[name] = {"cpu_s": None, "us_per_accepted": None, "share_of_box": None, "pids": []}
            continue
        total += cpu
        rows[name] = {"cpu_s": cpu, "us_per_accepted": _per(cpu, accepted),
                      "share_of_box": cpu / (wall_s * cores), "pids": list(found.get(name, []))}  # fmt: skip
    rows["total"] = {"cpu_s": total, "us_per_accepted": _per(total, accepted),
                     "share_of_box": total / (wall_s * cores), "pids": []}  # fmt: skip
    return {"accepted": accepted, "wall_s": wall_s, "groups": rows, "redis": redis_view(delta, accepted=accepted)}


def redis_view(delta: Mapping[str, float], *, accepted: int) -> dict[str, Any]:
    """Redis's own accounting over the window: CPU per accepted order, script calls and µs per call.

    Commands a script runs are counted in commandstats too (Redis 7) and inside the script's
    usec, so only script commands are summed; the others are listed for reading, not added.
    """
    cpu = delta.get("redis.cpu", 0.0)
    calls = {c: delta.get(f"{CMD}{c}.calls", 0.0) for c in SCRIPT_COMMANDS}
    usec = {c: delta.get(f"{CMD}{c}.usec", 0.0) for c in SCRIPT_COMMANDS}
    script_calls, script_usec = sum(calls.values()), sum(usec.values())
    called = [k.removeprefix(CMD).removesuffix(".calls") for k, v in delta.items() if k.startswith(CMD) and
              k.endswith(".calls") and v > 0]  # fmt: skip
    commands = {c: {"calls": delta[f"{CMD}{c}.calls"], "usec": delta.get(f"{CMD}{c}.usec", 0.0)}
                for c in sorted(called)}  # fmt: skip
    return {
        "cpu_s": cpu,
        "us_per_accepted": _per(cpu, accepted),
        "script_calls": script_calls,
        "script_usec": script_usec,
        "script_us_per_call": script_usec / script_calls if script_calls else None,
        "script_us_per_accepted": _per(script_usec, accepted, scale=1.0),
        "accepted_per_script_call": accepted / script_calls if script_calls else None,
        "by_script_command": {c: {"calls": calls[c], "usec": usec[c]} for c in SCRIPT_COMMANDS if calls[c]},
        "commands": commands,
    }


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def budget_lines(b: dict[str, Any]) -> list[str]:
    """The printed table."""
    lines = [f"CPU budget over the wrk window ({b['wall_s']:.1f} s, {b['accepted']:,} accepted):",
             f"  {'group':<9} {'CPU s':>7} {'µs/202':>8} {'box':>5}  pids"]  # fmt: skip
    for name, row in b["groups"].items():
        if row["cpu_s"] is None:
            lines.append(f"  {name:<9} {'-':>7} {'-':>8} {'-':>5}  not found")
            continue
        pids = ",".join(map(str, row["pids"][:4])) + (" …" if len(row["pids"]) > 4 else "")
        lines.append(f"  {name:<9} {row['cpu_s']:>7.2f} {_us(row['us_per_accepted']):>8} "
                     f"{row['share_of_box']:>5.0%}  {pids}")  # fmt: skip
    r = b["redis"]
    lines.append(
        f"  Redis INFO: {r['cpu_s']:.2f} s CPU = {_us(r['us_per_accepted'])} µs per accepted order; "
        f"script calls {r['script_calls']:,.0f} at {_us(r['script_us_per_call'])} µs/call "
        f"({_us(r['script_us_per_accepted'])} µs per accepted, "
        f"{r['accepted_per_script_call'] or 0:.2f} accepted per call)"
    )
    return lines
