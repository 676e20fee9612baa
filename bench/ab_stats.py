"""Pure arithmetic of the A/B driver (bench/ab.py): the figures of one run, medians, B/A ratios per round.

Ratios are taken within a round (B against the A run next to it in time), and the median of
those ratios is the headline: load from other work on the box drifts slowly, so neighbouring
runs share most of it, while medians per variant alone would mix rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from bench.budget import GROUPS

VARIANTS = ("A", "B")


def figures(result: Mapping[str, Any]) -> dict[str, float | None]:
    """The compared figures of one flash-sale result (`bench.flash_sale.flash_sale`), flat, by label."""
    g = result["gate"]
    b = g["budget"]
    out: dict[str, float | None] = {
        "accepted/s": g["accepted_per_s"],
        "p50 ms": g["p50_ms"],
        "p99 ms": g["p99_ms"],
    }
    for name in (*GROUPS, "total"):
        out[f"µs/202 {name}"] = b["groups"][name]["us_per_accepted"]
    out["µs/202 Redis INFO"] = b["redis"]["us_per_accepted"]
    out["script µs/call"] = b["redis"]["script_us_per_call"]
    out["202 per script call"] = b["redis"]["accepted_per_script_call"]
    return out


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(b: float | None, a: float | None) -> float | None:
    return b / a if a and b is not None else None


def summarize(runs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per figure: median of A, median of B, B/A of each round, and the median of those ratios.

    `runs`: {"round": int, "variant": "A" | "B", "figures": {label: value}}; a round missing one
    of its variants (a failed run) gives no ratio.
    """
    by_round: dict[int, dict[str, Mapping[str, float | None]]] = {}
    labels: list[str] = []
    for run in runs:
        by_round.setdefault(run["round"], {})[run["variant"]] = run["figures"]
        labels += [label for label in run["figures"] if label not in labels]
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        per_variant = {v: [r[v].get(label) for r in by_round.values() if v in r] for v in VARIANTS}
        ratios = [ratio(r["B"].get(label), r["A"].get(label)) for _, r in sorted(by_round.items()) if len(r) == 2]
        out[label] = {
            "median_A": median(per_variant["A"]),
            "median_B": median(per_variant["B"]),
            "ratios": ratios,
            "median_ratio": median(ratios),
        }
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def summary_lines(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The printed table: figure, median A, median B, B/A per round, median B/A."""
    lines = [f"{'figure':<20} {'median A':>9} {'median B':>9}  {'B/A per round':<24} {'median B/A':>10}"]
    for label, s in summary.items():
        per_round = " ".join("-" if r is None else f"{r:.3f}" for r in s["ratios"])
        med = "-" if s["median_ratio"] is None else f"{s['median_ratio']:.3f}"
        lines.append(f"{label:<20} {_num(s['median_A']):>9} {_num(s['median_B']):>9}  {per_round:<24} {med:>10}")
    return lines
