"""The PostgreSQL side of a batch: one transaction that records new orders exactly once.

Per batch: send it with binary COPY into a session-local staging table (before any lock, so
that the COPY of one batch overlaps the insert of the batch ahead of it on another
connection), lock the batch's product rows (sorted, so concurrent transactions never
deadlock), then one of two paths, both ending with units_sold raised by exactly what was
inserted:

- **new** (every batch the gate produces): the whole batch fits the units left
  (`batch.fits_whole`), so one statement moves the staged batch into `orders` with a plain
  INSERT, leaving out orders already refused, and adds the inserted quantities to units_sold.
  COPY costs the worker about 60 % of
  what encoding eight unnest arrays does (asyncpg checks every array element against three
  ABCs); a plain INSERT costs PostgreSQL about half of ON CONFLICT's speculative insertion per
  row. If any order is recorded already (a redelivery), its unique index raises, the
  transaction rolls back whole (the staging rows with it), and the batch goes down the careful
  path in a new transaction.
- **careful** (a redelivery, an unknown SKU, or an oversell that reached the database): skip
  orders already recorded or refused, fit the rest to the units left (`batch.fit_to_stock`),
  insert them with ON CONFLICT DO NOTHING RETURNING, add what was really inserted to
  units_sold, and record refusals.

The CHECK constraint on products stays the last line of defence; this code never relies on
tripping it. The product row lock also stands in for the `orders.sku` foreign key (dropped in
002): no order is inserted unless its SKU's row exists and is locked by the same transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from worker.batch import OrderRow, fit_to_stock, fits_whole

_LOCK_PRODUCTS = """
SELECT sku, units_on_sale - units_sold AS units_left
FROM products WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE"""

_ALREADY_SEEN = """
SELECT order_id FROM orders WHERE order_id = ANY($1::uuid[])
UNION ALL
SELECT order_id FROM refused_orders WHERE order_id = ANY($1::uuid[])"""

_INSERT_ORDERS = """
INSERT INTO orders (order_id, sku, user_id, qty, idempotency_key, accepted_at, kafka_partition, kafka_offset,
                    trace_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[], $7::int[],
                     $8::bigint[], $9::uuid[])
ON CONFLICT DO NOTHING
RETURNING sku, qty"""

# The new path's staging table: one per session, emptied by every commit. Created inside each
# transaction (IF NOT EXISTS is a catalog lookup), so a pooler that hands the transaction to
# another server session still finds it. Columns in OrderRow's field order (COPY sends tuples).
# The name changes with the columns (`_v2`: trace_id): a pooled server session may still hold the
# table an older worker created.
_STAGING_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS flashgate_batch_v2 (
    order_id uuid, sku text, user_id text, qty integer, idempotency_key text, accepted_at timestamptz,
    kafka_partition integer, kafka_offset bigint, trace_id uuid
) ON COMMIT DELETE ROWS"""
_STAGING = "flashgate_batch_v2"

# The new path in one statement. NOT EXISTS keeps a refused order refused when it comes again
# in a batch that now fits (refused_orders is empty unless the gate oversold).
_INSERT_NEW = """
WITH inserted AS (
    INSERT INTO orders (order_id, sku, user_id, qty, idempotency_key, accepted_at, kafka_partition, kafka_offset,
                        trace_id)
    SELECT * FROM flashgate_batch_v2 b
    WHERE NOT EXISTS (SELECT 1 FROM refused_orders r WHERE r.order_id = b.order_id)
    RETURNING sku, qty
), sold AS (SELECT sku, sum(qty)::int AS qty, count(*)::int AS n FROM inserted GROUP BY sku)
UPDATE products p SET units_sold = p.units_sold + sold.qty, updated_at = now()
FROM sold WHERE p.sku = sold.sku
RETURNING sold.n"""

_ADD_SOLD = """
UPDATE products p SET units_sold = p.units_sold + d.qty, updated_at = now()
FROM unnest($1::text[], $2::int[]) AS d(sku, qty) WHERE p.sku = d.sku"""

_INSERT_REFUSED = """
INSERT INTO refused_orders (order_id, sku, user_id, qty, idempotency_key, accepted_at, reason, kafka_partition,
                            kafka_offset, trace_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[], $7::text[],
                     $8::int[], $9::bigint[], $10::uuid[])
ON CONFLICT DO NOTHING"""


Path: TypeAlias = Literal["new", "careful", "redelivered"]


@dataclass(frozen=True)
class PersistResult:
    inserted: int
    duplicates: int  # already recorded (redelivery) or lost a uniqueness race
    refused: dict[str, int]  # reason -> count
    path: Path = "careful"  # "redelivered": the new path met a recorded order and the careful one ran

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


async def persist(conn: Connection, orders: list[OrderRow]) -> PersistResult:
    """Record `orders` (unique order ids) in one committed transaction; safe to repeat for the same batch.

    Raises what asyncpg raises for a lost connection or a failed commit; nothing is then
    committed and the caller retries the batch.
    """
    if not orders:
        return PersistResult(0, 0, {}, "new")
    try:
        async with conn.transaction():
            # Staged before the product lock: while another transaction holds the lock (the
            # previous batch, on another connection), this batch's COPY is already on its way.
            await _stage(conn, orders)
            remaining = await _lock_products(conn, orders)
            if fits_whole(orders, remaining):
                return await _insert_new(conn, orders)
            # The staged rows go unused here and vanish at commit (ON COMMIT DELETE ROWS).
            return await _insert_careful(conn, orders, remaining)
    except asyncpg.UniqueViolationError:
        pass  # only _INSERT_NEW can raise it: an order is recorded already, and nothing was committed
    async with conn.transaction():
        remaining = await _lock_products(conn, orders)
        result = await _insert_careful(conn, orders, remaining)
    return PersistResult(result.inserted, result.duplicates, result.refused, "redelivered")


async def _lock_products(conn: Connection, orders: list[OrderRow]) -> dict[str, int]:
    skus = sorted({o.sku for o in orders})
    return {r["sku"]: r["units_left"] for r in await conn.fetch(_LOCK_PRODUCTS, skus)}


async def _stage(conn: Connection, orders: list[OrderRow]) -> None:
    """COPY the batch into this session's staging table; takes no lock another batch could wait on."""
    await conn.execute(_STAGING_TABLE)
    await conn.copy_records_to_table(_STAGING, records=[msgspec.structs.astuple(o) for o in orders])


async def _insert_new(conn: Connection, orders: list[OrderRow]) -> PersistResult:
    inserted = sum(r["n"] for r in await conn.fetch(_INSERT_NEW))
    return PersistResult(inserted=inserted, duplicates=len(orders) - inserted, refused={}, path="new")


async def _insert_careful(conn: Connection, orders: list[OrderRow], remaining: dict[str, int]) -> PersistResult:
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
        [r.trace_id for r in rows],
    ]


def _refused_columns(refused: list[tuple[OrderRow, str]]) -> list[list[object]]:
    rows = [r for r, _ in refused]
    cols = _order_columns(rows)
    return [*cols[:6], [reason for _, reason in refused], *cols[6:]]
