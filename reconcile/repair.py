"""Apply one SKU's diff to Redis atomically (sale_apply.lua) and say what changed."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from reconcile.errors import ReconcileError
from reconcile.model import SkuDiff
from reconcile.recorded import recent_orders
from reconcile.redis_state import SaleRedis


@dataclass(frozen=True, slots=True)
class Repair:
    """What `--apply` did to one SKU. `action`: none, adjusted or rebuilt."""

    sku: str
    action: str
    stock_before: int | None = None
    stock_after: int | None = None
    users_changed: int = 0
    config_fields: tuple[str, ...] = ()
    answers_restored: int = 0
    clamped: bool = False


async def repair(conn: asyncpg.Connection, redis: SaleRedis, d: SkuDiff, *, idem_ttl_s: int, now_us: int) -> Repair:
    """Adjust a live sale by relative deltas, or rebuild a sale Redis lost from the record.

    Raises ReconcileError when Redis changed shape since the snapshot (the sale vanished or
    appeared): nothing was written, and a fresh run sees the new state.
    """
    if not d.drifted:
        return Repair(d.sku, "none", d.found_stock, d.found_stock)
    if d.redis_has_sale:
        applied = await redis.apply(
            d.sku,
            rebuild=False,
            stock=-d.stock_drift,
            cap=d.cap,
            config=d.expected_config if d.config_drifts else None,
            users={user: expected - found for user, (found, expected) in d.user_drifts.items()},
        )
        restored = 0
    else:
        applied = await redis.apply(
            d.sku, rebuild=True, stock=d.expected_stock, cap=d.cap, config=d.expected_config, users=d.expected_bought
        )
        orders = [*await recent_orders(conn, d.sku, idem_ttl_s), *d.unrecorded]
        restored = 0
        if applied.code == 0:
            restored = await redis.restore_answers(d.sku, orders, ttl_s=idem_ttl_s, now_us=now_us)
    if applied.code != 0:
        what = "lost its sale config" if applied.code == 1 else "gained a sale config"
        raise ReconcileError(f"{d.sku}: Redis {what} since the snapshot; nothing written, run again")
    return Repair(
        d.sku,
        "adjusted" if d.redis_has_sale else "rebuilt",
        d.found_stock,
        applied.stock,
        users_changed=len(d.user_drifts) if d.redis_has_sale else len(d.expected_bought),
        config_fields=tuple(c.field for c in d.config_drifts) if d.redis_has_sale else ("all",),
        answers_restored=restored,
        clamped=applied.clamped,
    )
