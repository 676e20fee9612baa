"""The reconciler's output: a table for people, JSON for scripts. Pure formatting."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from reconcile.model import SkuDiff
from reconcile.repair import Repair

HEADER = ("SKU", "ON SALE", "SOLD", "IN FLIGHT", "OUTBOX", "EXPECTED", "REDIS", "DRIFT", "BUYERS", "CONFIG")
DETAIL_LIMIT = 10


def _row(d: SkuDiff) -> tuple[str, ...]:
    redis = "-" if d.found_stock is None else str(d.found_stock)
    drift = "-" if not d.redis_has_sale else f"{d.stock_drift:+d}" if d.stock_drift else "0"
    config = "missing" if not d.redis_has_sale else ",".join(c.field for c in d.config_drifts) or "ok"
    numbers = (d.units_on_sale, d.units_sold, d.in_flight, d.outbox, d.expected_stock)
    return (d.sku, *map(str, numbers), redis, drift, str(len(d.user_drifts)), config)


def _details(d: SkuDiff) -> list[str]:
    lines = []
    if not d.redis_has_sale:
        lines.append(f"  {d.sku}: Redis has no sale config; --apply rebuilds every key from the record")
    for user, (found, expected) in list(d.user_drifts.items())[:DETAIL_LIMIT]:
        lines.append(f"  {d.sku}: buyer {user!r} has {found} unit(s) in Redis, {expected} recorded or in flight")
    if len(d.user_drifts) > DETAIL_LIMIT:
        lines.append(f"  {d.sku}: … and {len(d.user_drifts) - DETAIL_LIMIT} more buyer(s)")
    for c in d.config_drifts:
        lines.append(f"  {d.sku}: config {c.field} is {c.found!r} in Redis, {c.expected!r} in PostgreSQL")
    if d.expected_stock < 0:
        lines.append(f"  {d.sku}: more units recorded or in flight than on sale: oversold by {-d.expected_stock}")
    return lines


def _repair_line(r: Repair) -> str:
    if r.action == "none":
        return f"{r.sku}: nothing to repair"
    parts = [f"stock {'-' if r.stock_before is None else r.stock_before} -> {r.stock_after}"]
    if r.users_changed:
        parts.append(f"{r.users_changed} buyer count(s)")
    if r.config_fields:
        parts.append(f"config {','.join(r.config_fields)}")
    if r.answers_restored:
        parts.append(f"{r.answers_restored} stored answer(s) restored")
    if r.clamped:
        parts.append("CLAMPED: stock could not be made exact (oversold or capped)")
    return f"{r.sku}: {r.action}: {'; '.join(parts)}"


def table(diffs: list[SkuDiff], repairs: list[Repair]) -> str:
    """Aligned columns, then one line per finding, then what --apply changed."""
    rows = [HEADER, *(_row(d) for d in diffs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += [line for d in diffs for line in _details(d)]
    if repairs:
        lines += ["repaired:", *(_repair_line(r) for r in repairs)]
    if not diffs:
        lines.append("(no sales)")
    elif not repairs:
        drifted = sum(d.drifted for d in diffs)
        lines.append(f"{drifted} of {len(diffs)} SKU(s) drift" + ("; run with --apply to repair" if drifted else ""))
    return "\n".join(lines)


def as_json(diffs: list[SkuDiff], repairs: list[Repair], *, drifted: bool) -> dict[str, Any]:
    """`drifted`: what the exit code says (after --apply: whether drift remains)."""
    by_sku = {r.sku: asdict(r) for r in repairs}
    return {
        "drifted": drifted,
        "skus": [
            {
                "sku": d.sku,
                "drifted": d.drifted,
                "units_on_sale": d.units_on_sale,
                "units_sold": d.units_sold,
                "in_flight": d.in_flight,
                "outbox": d.outbox,
                "expected_stock": d.expected_stock,
                "redis_stock": d.found_stock,
                "drift": d.stock_drift if d.redis_has_sale else None,
                "redis_has_sale": d.redis_has_sale,
                "buyers": {u: {"redis": f, "expected": e} for u, (f, e) in d.user_drifts.items()},
                "config": [asdict(c) for c in d.config_drifts],
                "repair": by_sku.get(d.sku),
            }
            for d in diffs
        ],
    }
