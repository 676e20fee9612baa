"""Pure arithmetic of a soak run: samples → summary → verdict, and the printed lines (no I/O).

A sample (bench/soak.py takes one every `--sample-every` seconds, and one at t = 0 before the load)
is a dict: `t_s` (seconds since the load started), `procs` ({pid: {"role", "rss"}}, bytes),
`redis` (dbsize, expires, used_memory, used_memory_rss, bought_bytes, index_bytes), `outbox`
({"now", "max"}: XLEN of the SKU's outbox now and the largest of its 1 s polls since the last
sample), `admitted` (units Redis took from the stock), `rows` (orders of the SKU in PostgreSQL),
`sent`, `answers` (cumulative, by "202 accepted", "202 queued", "<status> <problem code>" or
"transport <exception>"), `latency_ms` (p50/p99/max of the interval's answers, counted from the
request's due time, so time spent waiting for a free connection is in), `generator` (its CPU
seconds, the largest delay of a send past its due time) and `loadavg_1m` (the shared box's).

The verdict's limits, and why (`Limits`):
- RSS: the growth of each gate and worker process over the second half, fitted by least squares
  (one noisy sample does not decide), stays below `rss_growth_mib` (8 MiB). At 250 orders/s one
  of two gate processes answers ~110,000 orders in 15 minutes, so 8 MiB is ~75 bytes per order:
  a per-order leak of any Python object (a small str is ~50 bytes, a dict entry more) shows,
  while allocator noise (pymalloc arenas, glibc trims, librdkafka buffers) moves RSS by a few MiB.
- Keyspace: the idempotency keys live `idem_ttl_s`, so at a steady rate the keyspace settles at
  about rate × TTL above the keys without a TTL; from t = TTL on it must stay flat. The run must
  be at least twice the TTL (else the plateau is not reached before the last third), dbsize over
  the last third must stay below (keys without a TTL before the load) + rate × TTL ×
  `keyspace_slack` (1.2: Redis's active expiry lets up to ~10 % of volatile keys linger expired,
  plus jitter; the few long-lived volatile keys, a day's order index and relay leases, fit in the
  rest), and its fitted growth over the last third must stay below rate × TTL × (slack − 1). The
  base leaves out keys with a TTL on purpose: a previous run's idempotency keys, still expiring
  when this one starts, would loosen the bound.
- Outbox: its largest 1 s poll stays at or below rate × `outbox_max_s` (1 s): entries leave when
  Kafka acknowledges them, within the producer's linger and the broker's ack.
- Answers: none 5xx, no transport error, and nothing but 202 (distinct buyers and fresh keys on a
  sale with stock left: any other answer is a defect).
- Persisted: after the load, PostgreSQL holds every admitted order, the outbox is empty, and
  `flashgate reconcile verify` passes (the same drain and check as `bench flash-sale`).
- Processes: the same gate and worker pids in every sample of the second half (a respawned
  process would hide a leak).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What the verdict allows (module docstring: why these)."""

    rss_growth_mib: float = 8.0
    keyspace_slack: float = 1.2
    outbox_max_s: float = 1.0


@dataclass(frozen=True)
class Check:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str


def fitted_growth(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope × time span of (t, y) points: how much y grew over them (0 for fewer than 2)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    slope = sum((t - mt) * (y - my) for t, y in points) / var
    return slope * (points[-1][0] - points[0][0])


def _since(samples: Sequence[Mapping[str, Any]], t_s: float) -> list[Mapping[str, Any]]:
    return [s for s in samples if s["t_s"] >= t_s]


def processes(samples: Sequence[Mapping[str, Any]], duration_s: float) -> dict[str, dict[str, Any]]:
    """Per pid seen under load: role, RSS (MiB) first minute / mid-run / last, fitted growth over the second half.

    "First minute" is the first sample after t = 0 (t = 0 is before the load); "mid" is the first
    sample of the second half. `in_every_second_half_sample` is False for a process that appeared
    or vanished in the second half.
    """
    loaded = [s for s in samples if s["t_s"] > 0]
    half = _since(loaded, duration_s / 2)
    pids = sorted({pid for s in loaded for pid in s["procs"]}, key=int)
    out: dict[str, dict[str, Any]] = {}
    for pid in pids:
        seen = [(s["t_s"], s["procs"][pid]) for s in loaded if pid in s["procs"]]
        second = [(t, p["rss"] / MIB) for t, p in seen if t >= duration_s / 2]
        out[pid] = {
            "role": seen[0][1]["role"],
            "first_mib": seen[0][1]["rss"] / MIB,
            "first_t_s": seen[0][0],
            "mid_mib": second[0][1] if second else None,
            "last_mib": seen[-1][1]["rss"] / MIB,
            "last_t_s": seen[-1][0],
            "growth_second_half_mib": fitted_growth(second),
            "in_every_second_half_sample": bool(half) and all(pid in s["procs"] for s in half),
        }
    return out


def keyspace(samples: Sequence[Mapping[str, Any]], *, rate_per_s: float, idem_ttl_s: float,
             duration_s: float, slack: float) -> dict[str, Any]:  # fmt: skip
    """The base (keys without a TTL before the load), the bound base + rate × TTL × slack, and the last third's
    dbsize min, max and fitted growth.
    """
    start = samples[0]["redis"]["dbsize"] - samples[0]["redis"]["expires"]
    steady = rate_per_s * idem_ttl_s
    last = _since(samples, duration_s * 2 / 3)
    sizes = [s["redis"]["dbsize"] for s in last]
    mem = [(s["t_s"], s["redis"]["used_memory"] - s["redis"]["bought_bytes"] - s["redis"]["index_bytes"])
           for s in last]  # fmt: skip
    return {
        "start": start,
        "steady_expected": steady,
        "bound": start + steady * slack,
        "growth_allowed": steady * (slack - 1),
        "last_third_min": min(sizes, default=None),
        "last_third_max": max(sizes, default=None),
        "last_third_growth": fitted_growth([(s["t_s"], s["redis"]["dbsize"]) for s in last]),
        "last_third_ttl_bound_memory_growth_mib": fitted_growth(mem) / MIB,
        "plateau_possible": idem_ttl_s * 2 <= duration_s,
    }


def summarize(
    samples: Sequence[Mapping[str, Any]], *, rate_per_s: float, idem_ttl_s: float, duration_s: float, limits: Limits
) -> dict[str, Any]:
    """Everything the verdict and the report read, from the samples alone."""
    first, last = samples[0], samples[-1]
    answers: dict[str, int] = dict(last["answers"])
    generator_cpu_s = last["generator"]["cpu_s"] - first["generator"]["cpu_s"]
    loads = [s["loadavg_1m"] for s in samples if "loadavg_1m" in s]
    return {
        "processes": processes(samples, duration_s),
        "keyspace": keyspace(
            samples, rate_per_s=rate_per_s, idem_ttl_s=idem_ttl_s, duration_s=duration_s, slack=limits.keyspace_slack
        ),
        "outbox_max": max(s["outbox"]["max"] for s in samples),
        "worker_lag_max": max(s["admitted"] - s["rows"] for s in samples),
        "sent": last["sent"],
        "answers": answers,
        "server_errors": sum(n for k, n in answers.items() if k[:1] == "5"),
        "transport_errors": sum(n for k, n in answers.items() if k.startswith("transport")),
        "not_202": sum(n for k, n in answers.items() if not k.startswith("202")),
        "latency_p99_ms_max": max((s["latency_ms"]["p99"] or 0 for s in samples), default=0),
        "generator": {
            "cpu_us_per_order": generator_cpu_s / max(1, last["sent"]) * 1e6,
            "late_max_ms": last["generator"]["late_max_ms"],
        },
        "loadavg_1m": [min(loads, default=None), max(loads, default=None)],
        "redis_memory_mib": {
            "first": first["redis"]["used_memory"] / MIB,
            "last": last["redis"]["used_memory"] / MIB,
            "bought_last": last["redis"]["bought_bytes"] / MIB,
            "index_last": last["redis"]["index_bytes"] / MIB,
        },
    }


def judge(summary: Mapping[str, Any], drained: Mapping[str, Any], *, rate_per_s: float, limits: Limits) -> list[Check]:
    """The verdict, one Check per criterion (module docstring); `drained`: {"ok", "detail"} of drain + verify."""
    procs, ks = summary["processes"], summary["keyspace"]
    grown = {pid: p["growth_second_half_mib"] for pid, p in procs.items()
             if p["growth_second_half_mib"] > limits.rss_growth_mib}  # fmt: skip
    unstable = [pid for pid, p in procs.items() if not p["in_every_second_half_sample"]]
    outbox_limit = rate_per_s * limits.outbox_max_s
    bounded = (ks["plateau_possible"] and ks["last_third_max"] is not None and ks["last_third_max"] <= ks["bound"]
               and ks["last_third_growth"] <= ks["growth_allowed"])  # fmt: skip
    return [
        Check("errors", summary["server_errors"] == 0 and summary["transport_errors"] == 0,
              f"{summary['server_errors']} 5xx, {summary['transport_errors']} transport errors"),
        Check("answers", summary["not_202"] == 0, f"{summary['not_202']} answers other than 202"),
        Check("rss", bool(procs) and not grown,
              f"{len(procs)} processes; second-half growth above {limits.rss_growth_mib:g} MiB: "
              + (", ".join(f"{pid} {procs[pid]['role']} +{g:.1f} MiB" for pid, g in grown.items()) or "none")),
        Check("processes", bool(procs) and not unstable,
              "same pids all second half" if not unstable else f"appeared or vanished: {', '.join(unstable)}"),
        Check("keyspace", bounded, _keyspace_detail(ks)),
        Check("outbox", summary["outbox_max"] <= outbox_limit,
              f"max {summary['outbox_max']} entries (limit rate × {limits.outbox_max_s:g} s = {outbox_limit:,.0f})"),
        Check("persisted", bool(drained["ok"]), str(drained["detail"])),
    ]  # fmt: skip


def _keyspace_detail(ks: Mapping[str, Any]) -> str:
    if not ks["plateau_possible"]:
        return "not shown: the run must last at least twice the idempotency TTL (FLASHGATE_IDEM_TTL_S on the gate)"
    return (
        f"dbsize last third {ks['last_third_min']:,}..{ks['last_third_max']:,} "
        f"(bound {ks['start']:,} keys without TTL + rate × TTL {ks['steady_expected']:,.0f} × slack "
        f"= {ks['bound']:,.0f}); fitted growth "
        f"{ks['last_third_growth']:+,.0f} (allowed {ks['growth_allowed']:,.0f})"
    )


def passed(checks: Sequence[Check]) -> bool:
    return all(c.ok for c in checks)


def checks_as_dicts(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def report_lines(result: Mapping[str, Any]) -> list[str]:
    """The human summary: settings, per-process RSS, keyspace, outbox, answers, then the verdict."""
    s, sm = result["settings"], result["summary"]
    lines = [
        f"soak {result['sku']}: {s['rate_per_s']:g} orders/s for {s['duration_s']} s, sample every "
        f"{s['sample_every_s']} s; gate idempotency TTL {result['idem_ttl_s']} s (read from Redis)",
        f"sent {sm['sent']:,}; answers {sm['answers']}; worst interval p99 {sm['latency_p99_ms_max']:.0f} ms",
        f"generator: {sm['generator']['cpu_us_per_order']:.0f} µs CPU per order, sent at most "
        f"{sm['generator']['late_max_ms']:.0f} ms late; the box's 1-min load average "
        f"{sm['loadavg_1m'][0]:.1f}..{sm['loadavg_1m'][1]:.1f} ({result['machine']['cores']} cores)",
        "RSS MiB (first sample under load → mid-run → last; fitted growth over the second half):",
    ]
    for pid, p in sm["processes"].items():
        mid = "-" if p["mid_mib"] is None else f"{p['mid_mib']:.1f}"
        lines.append(f"  {pid:>7} {p['role']:<12} {p['first_mib']:7.1f} → {mid:>7} → {p['last_mib']:7.1f}"
                     f"   {p['growth_second_half_mib']:+.1f}")  # fmt: skip
    ks, mem = sm["keyspace"], sm["redis_memory_mib"]
    lines += [
        f"Redis dbsize: last third {ks['last_third_min']:,}..{ks['last_third_max']:,}; keys without TTL at the start "
        f"{ks['start']:,} + expected plateau {ks['steady_expected']:,.0f} → bound {ks['bound']:,.0f}",
        f"Redis used_memory {mem['first']:.1f} → {mem['last']:.1f} MiB, of which the order index "
        f"{mem['index_last']:.1f} MiB and the bought hash {mem['bought_last']:.1f} MiB (kept past the idempotency "
        f"TTL by design); the rest grew {ks['last_third_ttl_bound_memory_growth_mib']:+.1f} MiB over the last third",
        f"outbox max {sm['outbox_max']}; worker lag max {sm['worker_lag_max']:,} orders (admitted − rows)",
        f"verdict: {'PASS' if result['passed'] else 'FAIL'}",
        *(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}" for c in result["checks"]),
    ]
    if "files" in result:
        lines.append(f"raw: {result['files']['json']}  chart: {result['files']['png']}")
    return lines
