"""PostgreSQL from the launcher: migrations applied once, constraints live, data kept after a crash."""

from __future__ import annotations

import asyncpg
import pytest

from ops import migrate
from tests.support.stackctl import StackHandle, flashgate


async def test_every_migration_applied_once(stack: StackHandle) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    finally:
        await conn.close()
    assert [(r["version"], r["checksum"]) for r in rows] == [(m.version, m.checksum) for m in migrate.load()]
    assert {"products", "orders", "refused_orders"} <= tables
    assert await migrate.apply_all(stack.database_url) == []


async def test_database_refuses_oversell(stack: StackHandle, name: str) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute("INSERT INTO products (sku, name, units_on_sale) VALUES ($1, 'x', 2)", name)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE products SET units_sold = 3 WHERE sku = $1", name)
    finally:
        await conn.close()


async def test_committed_row_survives_kill(stack: StackHandle, name: str) -> None:
    conn = await asyncpg.connect(stack.database_url)
    await conn.execute("INSERT INTO products (sku, name, units_on_sale) VALUES ($1, 'x', 5)", name)
    await conn.close()
    stack.run("kill", "postgres")
    assert stack.pids()["postgres"] is None
    stack.run("start", "postgres")
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("SELECT units_on_sale FROM products WHERE sku = $1", name) == 5
    finally:
        await conn.close()


async def test_stop_then_start(stack: StackHandle) -> None:
    stack.run("stop", "postgres")
    with pytest.raises(OSError):
        await asyncpg.connect(stack.database_url, timeout=2)
    stack.run("start", "postgres")
    conn = await asyncpg.connect(stack.database_url)
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()


def test_migrate_command(stack: StackHandle) -> None:
    done = flashgate("migrate", "--database-url", stack.database_url)
    assert done.stdout.strip() == "applied 0 migration(s)"


def test_migrate_command_unreachable_database_is_one_line() -> None:
    done = flashgate("migrate", "--database-url", "postgresql://nobody@127.0.0.1:1/x", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: migrate:")
    assert len(done.stderr.strip().splitlines()) == 1
