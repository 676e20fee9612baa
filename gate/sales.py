"""Put a sale into Redis (stock, sale config, outbox group) — for tests and benches until `flashgate sale` exists."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from flashgate import names


@dataclass(frozen=True, slots=True)
class Sale:
    """One SKU on sale. Times are Unix ms (0 = open-ended); rate 0 = no rate limit; limit 0 = no cap."""

    sku: str
    units: int
    starts_at_ms: int = 0
    ends_at_ms: int = 0
    per_user_limit: int = 0
    rate_per_s: float = 0.0
    burst: int = 1


async def put_sale(client: aioredis.Redis, sale: Sale) -> None:
    """Write `stock:{sku}` and `sale:{sku}` and create the outbox stream's consumer group.

    Overwrites stock: use it to create a sale, not to change one that is selling.
    """
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(
            names.sale_key(sale.sku),
            mapping={
                "units": sale.units,
                "starts_at_ms": sale.starts_at_ms,
                "ends_at_ms": sale.ends_at_ms,
                "per_user_limit": sale.per_user_limit,
                "rate_per_s": repr(sale.rate_per_s),
                "burst": sale.burst,
            },
        )
        pipe.set(names.stock_key(sale.sku), sale.units)
        await pipe.execute()
    try:
        await client.xgroup_create(names.outbox_key(sale.sku), names.OUTBOX_GROUP, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
