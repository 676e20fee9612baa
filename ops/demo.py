"""The demo sale `make run` opens: one SKU in PostgreSQL and Redis, created once, kept afterwards.

The database row is written first, then Redis, as the sale tools do; Redis gets what the
database says is left, so re-running after a Redis wipe does not re-sell sold units.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg
import redis.asyncio as aioredis

from flashgate import names
from gate.sales import Sale, put_sale

DEMO_SKU = "demo-sku"
DEMO_UNITS = 1000


async def open_demo_sale(database_url: str, redis_url: str) -> int:
    """Ensure the demo sale exists; return the units left."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO products (sku, name, units_on_sale, per_user_limit) VALUES ($1, 'Demo', $2, 5) "
            "ON CONFLICT (sku) DO NOTHING",
            DEMO_SKU,
            DEMO_UNITS,
        )
        left: int = await conn.fetchval("SELECT units_on_sale - units_sold FROM products WHERE sku = $1", DEMO_SKU)
    finally:
        await conn.close()
    client = aioredis.from_url(redis_url)
    try:
        if not await client.exists(names.sale_key(DEMO_SKU)):
            await put_sale(client, Sale(sku=DEMO_SKU, units=left, per_user_limit=5, rate_per_s=5.0, burst=5))
        return int(await client.get(names.stock_key(DEMO_SKU)) or 0)
    finally:
        await client.aclose()


def main() -> None:
    left = asyncio.run(open_demo_sale(os.environ["DATABASE_URL"], os.environ["REDIS_URL"]))
    port = os.environ.get("FLASHGATE_PORT", "8000")
    print(f"demo sale {DEMO_SKU}: {left} units left (5 per buyer)")
    print(
        f"try: curl -s -XPOST localhost:{port}/v1/orders -H 'X-User-Id: alice' "
        f'-H \'Idempotency-Key: k1\' -d \'{{"sku": "{DEMO_SKU}", "qty": 1}}\''
    )


if __name__ == "__main__":
    main()
