"""The `products` table: one row per SKU on sale, read by the sale tools and the reconciler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from flashgate.saleconfig import SaleConfig

COLUMNS = "sku, name, units_on_sale, units_sold, per_user_limit, starts_at, ends_at, rate_per_s, burst, closed_at"


def to_ms(t: datetime | None) -> int:
    """A timestamp as Unix ms; None (open-ended) as 0, the way the sale config in Redis says it."""
    return 0 if t is None else int(t.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    units_on_sale: int
    units_sold: int
    per_user_limit: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    rate_per_s: float | None
    burst: int | None
    closed_at: datetime | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Product:
        return cls(*(r[c] for c in COLUMNS.split(", ")))

    @property
    def effective_end(self) -> datetime | None:
        """When selling stops: the planned end, or the moment the sale was closed if earlier."""
        ends = [t for t in (self.ends_at, self.closed_at) if t is not None]
        return min(ends) if ends else None

    def sale_config(self) -> SaleConfig:
        """What `sale:{sku}` in Redis must say for this row."""
        return SaleConfig(
            units=self.units_on_sale,
            starts_at_ms=to_ms(self.starts_at),
            ends_at_ms=to_ms(self.effective_end),
            per_user_limit=self.per_user_limit or 0,
            rate_per_s=self.rate_per_s or 0.0,
            burst=self.burst or 1,
        )


async def fetch_products(conn: asyncpg.Connection, skus: Sequence[str] | None = None) -> list[Product]:
    """Rows for `skus` (all rows when None), ordered by SKU; unknown SKUs are simply absent."""
    query = f"SELECT {COLUMNS} FROM products WHERE $1::text[] IS NULL OR sku = ANY($1) ORDER BY sku"  # noqa: S608
    rows = await conn.fetch(query, None if skus is None else list(skus))
    return [Product.from_record(r) for r in rows]


# The advisory lock that serialises the sale tools and `reconcile --apply` on one SKU. Not a
# row lock: the worker's `units_sold` updates must never wait for an on-call tool.
SKU_LOCK_KEY = "hashtextextended('flashgate.sale:' || $1, 0)"


async def lock_sku(conn: asyncpg.Connection, sku: str) -> None:
    """Hold the SKU's lock until the current transaction ends (`reconcile --apply`)."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({SKU_LOCK_KEY})", sku)


@asynccontextmanager
async def sku_lock(conn: asyncpg.Connection, sku: str) -> AsyncIterator[None]:
    """Hold the SKU's lock across a commit and a Redis write (the sale tools); same key as `lock_sku`."""
    await conn.execute(f"SELECT pg_advisory_lock({SKU_LOCK_KEY})", sku)
    try:
        yield
    finally:
        await conn.execute(f"SELECT pg_advisory_unlock({SKU_LOCK_KEY})", sku)
