"""The reconciler's dry run as the monitor's drift check: `flashgate_reconcile_drift_units{sku}`."""

from __future__ import annotations

import time
from collections.abc import Mapping

import asyncpg
from confluent_kafka import KafkaException
from redis.exceptions import RedisError

from ops.monitor.errors import SourceUnavailable
from reconcile.errors import ReconcileError
from reconcile.run import reconcile
from reconcile.settings import ReconcileSettings

UNREADABLE = (ReconcileError, RedisError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaException, OSError)


class ReconcilerDrift:
    """Called every monitor interval; runs the reconciler at most once per `every_s` (it reads the
    whole Kafka backlog) and answers the last result in between. Drift = Redis stock − expected.
    """

    def __init__(self, settings: ReconcileSettings, *, every_s: float) -> None:
        self._settings = settings
        self._every_s = every_s
        self._last: Mapping[str, int] | None = None
        self._at = 0.0

    async def __call__(self) -> Mapping[str, int]:
        if self._last is not None and time.monotonic() - self._at < self._every_s:
            return self._last
        try:
            outcome = await reconcile(self._settings, None, apply=False)
        except (
            ReconcileError,
            RedisError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            KafkaException,
            OSError,
        ) as e:
            raise SourceUnavailable(f"reconciler dry run failed: {e}") from e
        self._last = {d.sku: d.stock_drift for d in outcome.diffs}
        self._at = time.monotonic()
        return self._last
