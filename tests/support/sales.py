"""Put a sale straight into Redis (stock, config, outbox group): for tests and benches; on-call uses `sale`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flashgate import names
from flashgate.redis_url import AnyRedis
from flashgate.saleconfig import SaleConfig


@dataclass(frozen=True, slots=True)
class Sale(SaleConfig):
    """One SKU on sale: its config (see SaleConfig) and, by keyword, the SKU."""

    sku: str = field(kw_only=True)


async def put_sale(client: AnyRedis, sale: Sale) -> None:
    """Write `stock:{sku}` and `sale:{sku}` and register the SKU (the outbox stream comes with the first order).

    Overwrites stock: use it to create a sale, not to change one that is selling.
    """
    config: dict[Any, Any] = sale.to_redis()
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(names.sale_key(sale.sku), mapping=config)
        pipe.set(names.stock_key(sale.sku), sale.units)
        await pipe.execute()
    await client.sadd(names.SALE_REGISTRY, sale.sku)
