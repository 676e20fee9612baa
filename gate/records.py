"""Persisted orders, read from PostgreSQL for `GET /v1/orders/{id}`; optional and never fatal.

The gate does not need PostgreSQL to admit orders, so this lookup is best effort: no
`DATABASE_URL`, PostgreSQL unreachable, or slower than `timeout_s` → `None` ("unknown here"),
and the status endpoint answers from Redis instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from gate.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

LOOKUP = "SELECT sku, user_id, qty, persisted_at FROM orders WHERE order_id = $1"


@dataclass(frozen=True, slots=True)
class PersistedOrder:
    """One row of `orders`, as much of it as the status answer shows."""

    sku: str
    user: str
    qty: int
    persisted_at: datetime


class OrderRecords:
    """`await records.find(order_id)` → PersistedOrder, or None when absent or PostgreSQL cannot answer."""

    def __init__(self, database_url: str | None, *, timeout_s: float, pool_max: int) -> None:
        self._url = database_url
        self._timeout_s = timeout_s
        self._pool_max = pool_max
        self._pool: asyncpg.Pool | None = None
        self._log = ThrottledLog(log, 10.0, time.monotonic)  # one line per outage, not one per request
        self.failures = 0  # lookups PostgreSQL could not answer (answered from Redis instead)

    @property
    def enabled(self) -> bool:
        return self._url is not None

    async def start(self) -> None:
        """Create the pool without connecting (min_size 0): a PostgreSQL outage must not stop the gate."""
        if self._url is None:
            return
        self._pool = await asyncpg.create_pool(
            self._url, min_size=0, max_size=self._pool_max, timeout=self._timeout_s, command_timeout=self._timeout_s
        )

    async def find(self, order_id: uuid.UUID) -> PersistedOrder | None:
        if self._pool is None:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                row = await self._pool.fetchrow(LOOKUP, order_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as e:
            self._warn(e)
            return None
        if row is None:
            return None
        return PersistedOrder(row["sku"], row["user_id"], row["qty"], row["persisted_at"])

    def _warn(self, e: BaseException) -> None:
        self.failures += 1
        kind = type(e).__name__
        self._log.warning(kind, "order lookup in PostgreSQL failed, answering from Redis: %s: %s", kind, e)

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._pool is None:
            return
        try:
            await asyncio.wait_for(self._pool.close(), timeout_s)
        except TimeoutError:
            self._pool.terminate()
