"""Put a sale straight into Redis (stock, config, outbox group): for tests and benches; on-call uses `sale`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from flashgate import names
from flashgate.saleconfig import SaleConfig


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
    config: dict[Any, Any] = SaleConfig(
        sale.units, sale.starts_at_ms, sale.ends_at_ms, sale.per_user_limit, sale.rate_per_s, sale.burst
    ).to_redis()
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(names.sale_key(sale.sku), mapping=config)
        pipe.set(names.stock_key(sale.sku), sale.units)
        await pipe.execute()
    try:
        await client.xgroup_create(names.outbox_key(sale.sku), names.OUTBOX_GROUP, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
