"""The worker's batch insert (worker.writer.persist) into real PostgreSQL: 2,000 new orders per round."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from worker.batch import OrderRow
from worker.writer import persist

ROWS = 2000


def test_persist_batch(benchmark: Any, database_url: str, loop: asyncio.AbstractEventLoop) -> None:
    sku = f"micro-{uuid.uuid4().hex[:8]}"
    conn: asyncpg.Connection = loop.run_until_complete(asyncpg.connect(database_url))
    loop.run_until_complete(
        conn.execute("INSERT INTO products (sku, name, units_on_sale) VALUES ($1, $1, $2)", sku, 10**9)
    )
    offsets = itertools.count()
    now = datetime.now(UTC)

    def batch() -> tuple[tuple[list[OrderRow]], dict[str, Any]]:
        rows = [OrderRow(uuid.uuid4(), sku, f"u{o}", 1, f"k{o}", now, 0, o) for o in itertools.islice(offsets, ROWS)]
        return (rows,), {}

    def run(rows: list[OrderRow]) -> int:
        return loop.run_until_complete(persist(conn, rows)).inserted

    try:
        inserted = benchmark.pedantic(run, setup=batch, rounds=15, warmup_rounds=1)
        assert inserted == ROWS
        benchmark.extra_info["rows_per_round"] = ROWS
        benchmark.extra_info["rows_per_s"] = ROWS / benchmark.stats.stats.mean
    finally:
        loop.run_until_complete(conn.close())
