"""The PostgreSQL side of a batch: one transaction that records new orders exactly once.

Per batch: lock the batch's product rows (sorted, so concurrent workers never deadlock), skip
orders already recorded or refused, fit the rest to the units left (`batch.fit_to_stock`),
insert them with ON CONFLICT DO NOTHING RETURNING, add what was really inserted to each
product's units_sold, and record refusals. The CHECK constraint on products stays the last
line of defence; this code never relies on tripping it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from worker.batch import OrderRow, fit_to_stock

_LOCK_PRODUCTS = """
SELECT sku, units_on_sale - units_sold AS units_left
FROM products WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE"""

_ALREADY_SEEN = """
SELECT order_id FROM orders WHERE order_id = ANY($1::uuid[])
UNION ALL
SELECT order_id FROM refused_orders WHERE order_id = ANY($1::uuid[])"""

_INSERT_ORDERS = """
INSERT INTO orders (order_id, sku, user_id, qty, idempotency_key, accepted_at, kafka_partition, kafka_offset)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[], $7::int[],
                     $8::bigint[])
ON CONFLICT DO NOTHING
RETURNING sku, qty"""

_ADD_SOLD = """
UPDATE products p SET units_sold = p.units_sold + d.qty, updated_at = now()
FROM unnest($1::text[], $2::int[]) AS d(sku, qty) WHERE p.sku = d.sku"""

_INSERT_REFUSED = """
INSERT INTO refused_orders (order_id, sku, user_id, qty, idempotency_key, accepted_at, reason, kafka_partition,
                            kafka_offset)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[], $7::text[],
                     $8::int[], $9::bigint[])
ON CONFLICT DO NOTHING"""


@dataclass(frozen=True)
class PersistResult:
    inserted: int
    duplicates: int  # already recorded (redelivery) or lost a uniqueness race
    refused: dict[str, int]  # reason -> count

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


async def persist(conn: Connection, orders: list[OrderRow]) -> PersistResult:
    """Record `orders` (unique order ids) in one transaction; safe to repeat for the same batch."""
    if not orders:
        return PersistResult(0, 0, {})
    async with conn.transaction():
        skus = sorted({o.sku for o in orders})
        remaining = {r["sku"]: r["units_left"] for r in await conn.fetch(_LOCK_PRODUCTS, skus)}
        seen = {r["order_id"] for r in await conn.fetch(_ALREADY_SEEN, [o.order_id for o in orders])}
        admission = fit_to_stock([o for o in orders if o.order_id not in seen], remaining)
        inserted = await conn.fetch(_INSERT_ORDERS, *_order_columns(admission.insert)) if admission.insert else []
        sold: Counter[str] = Counter()
        for row in inserted:
            sold[row["sku"]] += row["qty"]
        if sold:
            await conn.execute(_ADD_SOLD, list(sold), list(sold.values()))
        if admission.refuse:
            await conn.execute(_INSERT_REFUSED, *_refused_columns(admission.refuse))
    refused = Counter(reason for _, reason in admission.refuse)
    return PersistResult(
        inserted=len(inserted),
        duplicates=len(seen) + len(admission.insert) - len(inserted),
        refused=dict(refused),
    )


def _order_columns(rows: list[OrderRow]) -> list[list[object]]:
    return [
        [r.order_id for r in rows],
        [r.sku for r in rows],
        [r.user_id for r in rows],
        [r.qty for r in rows],
        [r.idempotency_key for r in rows],
        [r.accepted_at for r in rows],
        [r.partition for r in rows],
        [r.offset for r in rows],
    ]


def _refused_columns(refused: list[tuple[OrderRow, str]]) -> list[list[object]]:
    rows = [r for r, _ in refused]
    cols = _order_columns(rows)
    return [*cols[:6], [reason for _, reason in refused], *cols[6:]]
