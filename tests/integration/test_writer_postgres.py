"""The batch transaction on real PostgreSQL: idempotent, stock-bounded, safe under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from tests.pipeline import add_product, persisted
from tests.stackctl import StackHandle
from worker.batch import OrderRow
from worker.writer import PersistResult, persist


def rows(sku: str, n: int, qty: int = 1, start: int = 0) -> list[OrderRow]:
    now = datetime.now(UTC)
    return [OrderRow(uuid.uuid4(), sku, f"u{start + i}", qty, f"k{start + i}", now, 0, start + i) for i in range(n)]


async def persist_twice(database_url: str, batch: list[OrderRow]) -> tuple[PersistResult, PersistResult]:
    """Write the same batch two times over, as a redelivery would."""
    conn = await asyncpg.connect(database_url)
    try:
        return await persist(conn, batch), await persist(conn, batch)
    finally:
        await conn.close()


async def test_repeated_batch_is_recorded_once(stack: StackHandle, name: str) -> None:
    await add_product(stack.database_url, name, 10)
    batch = rows(name, 4, qty=2)
    first, again = await persist_twice(stack.database_url, batch)
    assert (first.inserted, first.duplicates) == (4, 0)
    assert (again.inserted, again.duplicates) == (0, 4)
    state = await persisted(stack.database_url, name)
    assert state.units_sold == state.qty_total == 8


async def test_same_idempotency_key_under_another_order_id_is_a_duplicate(stack: StackHandle, name: str) -> None:
    await add_product(stack.database_url, name, 10)
    [a] = rows(name, 1)
    twin = OrderRow(uuid.uuid4(), a.sku, a.user_id, a.qty, a.idempotency_key, a.accepted_at, 1, 99)
    conn = await asyncpg.connect(stack.database_url)
    try:
        await persist(conn, [a])
        result = await persist(conn, [twin])
    finally:
        await conn.close()
    assert (result.inserted, result.duplicates) == (0, 1)
    assert (await persisted(stack.database_url, name)).units_sold == 1


async def test_refused_order_stays_refused_on_redelivery(stack: StackHandle, name: str) -> None:
    await add_product(stack.database_url, name, 1)
    batch = rows(name, 3)
    first, again = await persist_twice(stack.database_url, batch)
    assert (first.inserted, first.refused) == (1, {"oversell": 2})
    assert (again.inserted, again.duplicates, again.refused) == (0, 3, {})


async def test_concurrent_batches_never_oversell(stack: StackHandle, name: str) -> None:
    await add_product(stack.database_url, name, 50)
    pool = await asyncpg.create_pool(stack.database_url, min_size=4, max_size=4)
    assert pool is not None

    async def write(batch: list[OrderRow]) -> None:
        async with pool.acquire() as conn:
            await persist(conn, batch)

    try:
        await asyncio.gather(*(write(rows(name, 10, start=100 * i)) for i in range(8)))
    finally:
        await pool.close()
    state = await persisted(stack.database_url, name)
    assert state.units_sold == state.qty_total == 50
    assert state.refused == {"oversell": 30}
