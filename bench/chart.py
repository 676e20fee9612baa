"""A PNG of one flash-sale run: answers per second by status, and latency, over time (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

COLORS = {"202": "tab:green", "409": "tab:orange", "429": "tab:purple", "503": "tab:red"}


def draw(result: dict[str, Any], path: Path) -> None:
    """Top: answers/s per status per second. Bottom: mean latency per second (Little's law) and run percentiles.

    wrk keeps one latency histogram per run, so the per-second latency is the closed-loop mean,
    connections / answers per second, which holds exactly while every connection has one
    request in flight; the run's p50/p99 from wrk's histogram are drawn as lines beside it.
    """
    gate = result["gate"]
    conns = int(result["settings"]["connections"])
    series = gate["series"]
    t = [row["t"] for row in series]
    statuses = sorted({k for row in series for k in row if k != "t"})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for st in statuses:
        top.plot(t, [row.get(st, 0) for row in series], label=st, color=COLORS.get(st), marker=".")
    if "bare" in result:
        top.axhline(result["bare"]["offered_per_s"], color="grey", linestyle="--", label="bare endpoint req/s")
    if gate["sold_out_at_s"] is not None:
        for ax in (top, bottom):
            ax.axvline(gate["sold_out_at_s"], color="black", linestyle=":", label="sold out")
    top.set_ylabel("answers / s")
    top.set_title(f"flash sale {result['sku']}: stock {result['settings']['stock']}, {conns} connections")
    top.legend(loc="upper right")
    totals = [sum(v for k, v in row.items() if k != "t") for row in series]
    bottom.plot(t, [conns / n * 1e3 if n else None for n in totals], marker=".", label="mean (connections / answers)")
    bottom.axhline(gate["p50_ms"], color="tab:blue", linestyle="--", label=f"run p50 {gate['p50_ms']:.1f} ms")
    bottom.axhline(gate["p99_ms"], color="tab:red", linestyle="--", label=f"run p99 {gate['p99_ms']:.1f} ms")
    bottom.set_ylabel("latency, ms")
    bottom.set_xlabel("seconds since the first request (edge seconds are partial)")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
