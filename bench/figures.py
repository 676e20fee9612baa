"""Pure arithmetic of a flash-sale run: wrk's JSON → rates, latencies, time to sell out (no I/O)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LoadFigures:
    """What one wrk run says about a server; rates are per second of the run."""

    duration_s: float
    responses: int
    offered_per_s: float  # responses/s: wrk is closed-loop, so what it offered is what came back
    by_status: dict[int, int]
    accepted: int  # 202s of orders admitted in the run: replays (Idempotent-Replayed) not counted
    replayed_202: int  # 202s that replayed an earlier answer (none when every key is new)
    accepted_per_s: float  # `accepted` over the selling phase (first request → last 202), else the run
    conflict_per_s: float  # 409s over the run
    rate_limited_per_s: float  # 429s over the run
    sold_out_phase_per_s: float | None  # answers/s after the last 202 (all 409 once sold out)
    errors: int  # socket errors, timeouts and 5xx
    server_errors: dict[str, int]  # 5xx answers by problem code (redis_unavailable, overloaded, ...)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    time_to_sell_out_s: float | None
    sold_out_at_s: float | None  # on the series' time axis (seconds since the first request's whole second)
    series: list[dict[str, Any]]  # per wall-clock second: t (s from start), answers by status

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_figures(raw: dict[str, Any], *, sold_out: bool) -> LoadFigures:
    """`sold_out`: the stock reached 0 (from Redis), so the last 202 marks the sell-out."""
    duration_s = raw["duration_us"] / 1e6
    per_second: dict[int, dict[int, int]] = {}
    for key, count in raw["per_second"].items():  # "<unix second>:<status>" → answers
        sec, status = (int(x) for x in key.split(":"))
        per_second.setdefault(sec, {})[status] = int(count)
    by_status: dict[int, int] = {}
    for b in per_second.values():
        for st, c in b.items():
            by_status[st] = by_status.get(st, 0) + c
    responses = sum(by_status.values())
    first_t, last_202_t = raw["first_request_t"], raw["last_202_t"]
    replayed = int(raw.get("replayed_202", 0))
    accepted = by_status.get(202, 0) - replayed
    selling_s = (last_202_t - first_t) if (sold_out and accepted and last_202_t > first_t) else duration_s
    # Sold-out phase: only whole seconds strictly between the sell-out second and the last (partial) one.
    full = range(int(last_202_t) + 1, int(first_t + duration_s)) if sold_out and accepted else range(0)
    after = sum(c for sec in full for c in per_second.get(sec, {}).values())
    start = int(first_t) if first_t else min(per_second, default=0)
    series = [
        {"t": sec - start, **{str(k): v for k, v in sorted(per_second[sec].items())}} for sec in sorted(per_second)
    ]
    lat = raw["latency_us"]
    err = raw["errors"]
    socket_errors = err["connect"] + err["read"] + err["write"] + err["timeout"]
    return LoadFigures(
        duration_s=duration_s,
        responses=responses,
        offered_per_s=responses / duration_s,
        by_status=by_status,
        accepted=accepted,
        replayed_202=replayed,
        accepted_per_s=accepted / selling_s if selling_s > 0 else 0.0,
        conflict_per_s=by_status.get(409, 0) / duration_s,
        rate_limited_per_s=by_status.get(429, 0) / duration_s,
        sold_out_phase_per_s=after / len(full) if len(full) else None,
        errors=socket_errors + sum(c for st, c in by_status.items() if st >= 500),
        server_errors=dict(raw.get("server_errors", {})),
        p50_ms=lat["p50"] / 1e3,
        p90_ms=lat["p90"] / 1e3,
        p99_ms=lat["p99"] / 1e3,
        p999_ms=lat["p999"] / 1e3,
        max_ms=lat["max"] / 1e3,
        time_to_sell_out_s=selling_s if sold_out and accepted else None,
        sold_out_at_s=last_202_t - start if sold_out and accepted else None,
        series=series,
    )
