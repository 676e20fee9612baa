"""The batch transaction on real PostgreSQL: idempotent, stock-bounded, safe under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from tests.support.pipeline import add_product, persisted
from tests.support.stackctl import StackHandle
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
    assert (first.inserted, first.duplicates, first.path) == (4, 0, "new")
    # its own 8 units already taken, the batch no longer fits the 2 left: the careful path skips it
    assert (again.inserted, again.duplicates, again.path) == (0, 4, "careful")
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


async def test_partly_redelivered_batch_inserts_only_the_new_orders(stack: StackHandle, name: str) -> None:
    await add_product(stack.database_url, name, 10)
    batch = rows(name, 5)
    conn = await asyncpg.connect(stack.database_url)
    try:
        await persist(conn, batch[:2])
        result = await persist(conn, batch)  # the new path's unique index raises; the careful path runs
    finally:
        await conn.close()
    assert (result.inserted, result.duplicates, result.path) == (3, 2, "redelivered")
    state = await persisted(stack.database_url, name)
    assert state.units_sold == state.qty_total == 5
    assert sorted(state.order_ids) == sorted(o.order_id for o in batch)


async def test_two_order_ids_with_one_idempotency_key_in_a_batch_record_one(stack: StackHandle, name: str) -> None:
    await add_product(stack.database_url, name, 10)
    [a] = rows(name, 1)
    twin = OrderRow(uuid.uuid4(), a.sku, a.user_id, a.qty, a.idempotency_key, a.accepted_at, 1, 99)
    conn = await asyncpg.connect(stack.database_url)
    try:
        result = await persist(conn, [a, twin])
    finally:
        await conn.close()
    assert (result.inserted, result.duplicates, result.path) == (1, 1, "redelivered")
    assert (await persisted(stack.database_url, name)).units_sold == 1


async def test_refused_order_stays_refused_when_its_batch_now_fits(stack: StackHandle, name: str) -> None:
    await add_product(stack.database_url, name, 1)
    batch = rows(name, 2)
    conn = await asyncpg.connect(stack.database_url)
    try:
        first = await persist(conn, batch)
        await conn.execute("UPDATE products SET units_on_sale = 10 WHERE sku = $1", name)
        [late] = rows(name, 1, start=10)
        again = await persist(conn, [*batch, late])  # fits now, and the refused order is new to `orders`
    finally:
        await conn.close()
    assert (first.inserted, first.refused, first.path) == (1, {"oversell": 1}, "careful")
    assert (again.inserted, again.duplicates, again.refused) == (1, 2, {})
    state = await persisted(stack.database_url, name)
    assert state.units_sold == state.qty_total == 2
    assert state.refused == {"oversell": 1}


async def test_unknown_sku_is_refused_and_the_rest_persists(stack: StackHandle, name: str) -> None:
    await add_product(stack.database_url, name, 10)
    ghost = f"{name}-ghost"
    batch = [*rows(name, 2), *rows(ghost, 1, start=5)]
    conn = await asyncpg.connect(stack.database_url)
    try:
        result = await persist(conn, batch)
        refused = await conn.fetchval("SELECT reason FROM refused_orders WHERE sku = $1", ghost)
    finally:
        await conn.close()
    assert (result.inserted, result.refused, result.path) == (2, {"unknown_sku": 1}, "careful")
    assert refused == "unknown_sku"
    assert (await persisted(stack.database_url, name)).units_sold == 2


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


async def test_overlapping_batches_sharing_orders_record_each_once(stack: StackHandle, name: str) -> None:
    """Two batches in flight at once (the worker's overlap) with a redelivered order in both.

    The second one stages its rows, then waits for the product row lock; when it gets it, the
    first has committed, so its plain insert meets the shared orders and it takes the careful
    path. No deadlock, nothing twice, units_sold exact.
    """
    await add_product(stack.database_url, name, 100)
    first = rows(name, 20)
    second = first[10:] + rows(name, 10, start=20)
    pool = await asyncpg.create_pool(stack.database_url, min_size=2, max_size=2)
    assert pool is not None

    async def write(batch: list[OrderRow]) -> PersistResult:
        async with pool.acquire() as conn:
            return await persist(conn, batch)

    try:
        results = await asyncio.wait_for(asyncio.gather(write(first), write(second)), 30)
    finally:
        await pool.close()
    assert sum(r.inserted for r in results) == 30
    assert sum(r.duplicates for r in results) == 10
    state = await persisted(stack.database_url, name)
    assert state.units_sold == state.qty_total == 30
