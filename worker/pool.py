"""An asyncpg pool that reports its size, use, waiters and acquire latency."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from worker.metrics import WorkerMetrics


class InstrumentedPool:
    """Wraps `asyncpg.Pool.acquire` to keep the pool gauges current."""

    def __init__(self, pool: asyncpg.Pool, metrics: WorkerMetrics, *, acquire_timeout_s: float) -> None:
        self.pool = pool
        self.metrics = metrics
        self.acquire_timeout_s = acquire_timeout_s
        self._waiting = 0
        metrics.pool_max.set(pool.get_max_size())
        self._refresh()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A connection for the duration of the block; TimeoutError when none frees up in time."""
        self._waiting += 1
        self.metrics.pool_waiters.set(self._waiting)
        began = time.perf_counter()
        try:
            conn = await self.pool.acquire(timeout=self.acquire_timeout_s)
        finally:
            self._waiting -= 1
            self.metrics.pool_waiters.set(self._waiting)
        self.metrics.pool_acquire_seconds.observe(time.perf_counter() - began)
        self._refresh()
        try:
            yield conn
        finally:
            await self.pool.release(conn)
            self._refresh()

    def _refresh(self) -> None:
        size = self.pool.get_size()
        self.metrics.pool_size.set(size)
        self.metrics.pool_in_use.set(size - self.pool.get_idle_size())
