"""PostgreSQL side of the reconciler: what the record says about one SKU."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from reconcile.model import OrderRef, Recorded, from_us, to_us


async def recorded(conn: asyncpg.Connection, sku: str, until_us: int, candidates: Sequence[OrderRef]) -> Recorded:
    """Units per user admitted up to `until_us`, units in total, and which `candidates` have rows."""
    by_user = await conn.fetch(
        "SELECT user_id, sum(qty)::bigint AS units FROM orders WHERE sku = $1 AND accepted_at <= $2 GROUP BY user_id",
        sku,
        from_us(until_us),
    )
    total: int = await conn.fetchval("SELECT coalesce(sum(qty), 0)::bigint FROM orders WHERE sku = $1", sku)
    matched = await conn.fetch(
        "SELECT order_id::text, user_id, idempotency_key FROM orders WHERE sku = $1 AND (order_id = ANY($2::uuid[]) "
        "OR (user_id, idempotency_key) IN (SELECT u, k FROM unnest($3::text[], $4::text[]) AS c(u, k)))",
        sku,
        [o.order_id for o in candidates],
        [o.user_id for o in candidates],
        [o.idempotency_key for o in candidates],
    )
    return Recorded(
        units_by_user={r["user_id"]: int(r["units"]) for r in by_user},
        units_total=int(total),
        ids=frozenset(r["order_id"] for r in matched),
        identities=frozenset((r["user_id"], r["idempotency_key"]) for r in matched),
    )


async def recent_orders(conn: asyncpg.Connection, sku: str, younger_than_s: int) -> list[OrderRef]:
    """Rows admitted in the last `younger_than_s` seconds (whose stored answers may still matter)."""
    rows = await conn.fetch(
        "SELECT order_id::text, user_id, idempotency_key, qty, accepted_at FROM orders "
        "WHERE sku = $1 AND accepted_at > now() - make_interval(secs => $2)",
        sku,
        float(younger_than_s),
    )
    return [
        OrderRef(r["order_id"], r["user_id"], r["idempotency_key"], r["qty"], to_us(r["accepted_at"])) for r in rows
    ]
