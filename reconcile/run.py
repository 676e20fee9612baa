"""The reconciler's async shell: gather every input, `diff` each SKU, and repair on request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from flashgate.redis_url import AnyRedis, connect
from reconcile.backlog import read_backlog
from reconcile.diff import diff
from reconcile.errors import ReconcileError
from reconcile.model import SkuDiff, SkuInputs
from reconcile.products import fetch_products, lock_sku
from reconcile.recorded import recorded
from reconcile.redis_state import SaleRedis
from reconcile.repair import Repair, repair
from reconcile.settings import ReconcileSettings


@dataclass(frozen=True, slots=True)
class Outcome:
    diffs: list[SkuDiff]
    repairs: list[Repair] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        """Something still drifts: nothing was repaired, or a repair had to clamp."""
        if self.repairs:
            return any(r.clamped for r in self.repairs)
        return any(d.drifted for d in self.diffs)


@asynccontextmanager
async def connections(settings: ReconcileSettings) -> AsyncIterator[tuple[asyncpg.Connection, AnyRedis]]:
    """One PostgreSQL connection and one Redis client for the run, closed afterwards."""
    conn = await asyncpg.connect(settings.database_url, timeout=10)
    client = connect(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    try:
        yield conn, client
    finally:
        await client.aclose()
        await conn.close()


async def gather(
    conn: asyncpg.Connection, redis: SaleRedis, settings: ReconcileSettings, skus: Sequence[str] | None
) -> list[SkuInputs]:
    """Read in the order that makes a live pipeline safe to compare.

    Products first, then each SKU's atomic Redis snapshot, then the Kafka backlog and the
    rows: an order admitted before a snapshot is by then in the outbox, in Kafka past the
    committed offsets, or in PostgreSQL, so nothing admitted before the snapshot is missed.
    """
    products = await fetch_products(conn, skus)
    unknown = sorted(set(skus or ()) - {p.sku for p in products})
    if unknown:
        raise ReconcileError(f"unknown SKU(s): {', '.join(unknown)}")
    snapshots = [await redis.snapshot(p.sku) for p in products]
    wanted = {p.sku for p in products}
    backlog = await asyncio.to_thread(
        read_backlog, settings.kafka_bootstrap, settings.topic, settings.group, wanted,
        timeout_s=settings.backlog_timeout_s, security=settings.kafka_security,
    )  # fmt: skip
    inputs = []
    for product, snap in zip(products, snapshots, strict=True):
        orders = backlog.get(product.sku, [])
        rec = await recorded(conn, product.sku, snap.taken_at_us, [*snap.outbox, *orders])
        inputs.append(SkuInputs(product, snap, orders, rec))
    return inputs


async def reconcile(settings: ReconcileSettings, skus: Sequence[str] | None, *, apply: bool) -> Outcome:
    """Dry run (`apply` false) or repair. Repairs hold each SKU's advisory lock, so the sale
    tools cannot change a sale between the snapshot and the write; the gate keeps admitting.
    """
    async with connections(settings) as (conn, client):
        redis = SaleRedis(client)
        if not apply:
            return Outcome([diff(i) for i in await gather(conn, redis, settings, skus)])
        async with conn.transaction():
            targets = sorted(skus) if skus is not None else [p.sku for p in await fetch_products(conn)]
            for sku in targets:
                await lock_sku(conn, sku)
            inputs = await gather(conn, redis, settings, targets)
            diffs = [diff(i) for i in inputs]
            repairs = [
                await repair(conn, redis, d, idem_ttl_s=settings.idem_ttl_s, now_us=i.redis.taken_at_us)
                for d, i in zip(diffs, inputs, strict=True)
            ]
        return Outcome(diffs, repairs)
