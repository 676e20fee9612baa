"""The sale commands' effects: PostgreSQL first, then Redis, under the SKU's advisory lock.

A failure between the two writes leaves the database ahead of Redis, which the reconciler
repairs (`flashgate reconcile --sku S --apply`); the error message says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from flashgate import names
from flashgate.redis_url import AnyRedis
from ops.sale.spec import SaleError, SaleSpec, check_sku
from reconcile.products import Product, fetch_products, sku_lock
from reconcile.redis_state import SaleRedis

REPAIR_HINT = "run `flashgate reconcile --sku {sku} --apply` to bring Redis in line"


async def _redis_step(sku: str, what: str, write: Any) -> Any:
    try:
        return await write
    except RedisError as e:
        raise SaleError(f"{what} in PostgreSQL, but Redis failed ({e}); {REPAIR_HINT.format(sku=sku)}") from e


async def create(conn: asyncpg.Connection, redis: SaleRedis, spec: SaleSpec) -> Product:
    async with sku_lock(conn, spec.sku):
        try:
            await conn.execute(
                "INSERT INTO products (sku, name, units_on_sale, per_user_limit, starts_at, ends_at, rate_per_s, "
                "burst) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                spec.sku, spec.name, spec.stock, spec.per_user_limit, spec.starts_at, spec.ends_at,
                spec.rate_per_s, spec.burst,
            )  # fmt: skip
        except asyncpg.UniqueViolationError as e:
            raise SaleError(f"sale {spec.sku!r} already exists (use add-stock to sell more)") from e
        product = await _existing(conn, spec.sku)
        write = redis.apply(
            spec.sku, rebuild=True, stock=spec.stock, cap=spec.stock, config=product.sale_config(), users={}
        )
        applied = await _redis_step(spec.sku, "sale created", write)
    if applied.code != 0:
        raise SaleError(
            f"sale created in PostgreSQL, but Redis already had a sale config for {spec.sku!r} "
            f"(left from earlier?); {REPAIR_HINT.format(sku=spec.sku)}"
        )
    return product


async def _existing(conn: asyncpg.Connection, sku: str) -> Product:
    found = await fetch_products(conn, [check_sku(sku)])
    if not found:
        raise SaleError(f"unknown SKU {sku!r}")
    return found[0]


async def add_stock(conn: asyncpg.Connection, redis: SaleRedis, sku: str, units: int) -> Product:
    if units < 1:
        raise SaleError(f"units to add must be >= 1, not {units}")
    async with sku_lock(conn, sku):
        if (await _existing(conn, sku)).closed_at is not None:
            raise SaleError(f"sale {sku!r} is closed")
        await conn.execute(
            "UPDATE products SET units_on_sale = units_on_sale + $2, updated_at = now() WHERE sku = $1", sku, units
        )
        product = await _existing(conn, sku)
        applied = await _redis_step(
            sku,
            f"stock added (now {product.units_on_sale})",
            redis.apply(
                sku, rebuild=False, stock=units, cap=product.units_on_sale - product.units_sold,
                config=product.sale_config(), users={},
            ),
        )  # fmt: skip
    if applied.code != 0:
        raise SaleError(f"stock added in PostgreSQL, but Redis has no sale config; {REPAIR_HINT.format(sku=sku)}")
    return product


async def close(conn: asyncpg.Connection, redis: SaleRedis, sku: str) -> Product:
    async with sku_lock(conn, sku):
        if (await _existing(conn, sku)).closed_at is not None:
            raise SaleError(f"sale {sku!r} is already closed")
        await conn.execute("UPDATE products SET closed_at = now(), updated_at = now() WHERE sku = $1", sku)
        product = await _existing(conn, sku)
        applied = await _redis_step(
            sku,
            "sale closed",
            redis.apply(sku, rebuild=False, stock=0, cap=None, config=product.sale_config(), users={}),
        )
    if applied.code != 0:
        raise SaleError(f"sale closed in PostgreSQL, but Redis has no sale config; {REPAIR_HINT.format(sku=sku)}")
    return product


@dataclass(frozen=True, slots=True)
class SaleView:
    """A sale as on-call sees it: the row, and what Redis holds (None when Redis is unreadable)."""

    product: Product
    redis_stock: int | None
    redis_has_sale: bool | None
    outbox: int | None  # entries (one per admission call), not orders
    buyers: int | None


async def views(conn: asyncpg.Connection, client: AnyRedis, skus: list[str] | None) -> list[SaleView]:
    products = await fetch_products(conn, skus)
    if skus and not products:
        raise SaleError(f"unknown SKU {skus[0]!r}")
    out = []
    for p in products:
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.get(names.stock_key(p.sku))
                pipe.exists(names.sale_key(p.sku))
                pipe.xlen(names.outbox_key(p.sku))
                pipe.hlen(names.bought_key(p.sku))
                stock, has_sale, outbox, buyers = await pipe.execute()
            out.append(SaleView(p, None if stock is None else int(stock), bool(has_sale), outbox, buyers))
        except RedisError:
            out.append(SaleView(p, None, None, None, None))
    return out
