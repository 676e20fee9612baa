"""The worker's Prometheus metrics, built once per process on a given registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REFUSAL_REASONS = ("oversell", "unknown_sku")  # worker.batch.fit_to_stock
_BATCH_ROWS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """Batch, row, DLQ, lag, commit and connection-pool metrics (base units, `flashgate_` prefix)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_size = Histogram(
            "flashgate_worker_batch_messages", "Messages per consumed batch.", buckets=_BATCH_ROWS, registry=registry
        )
        self.batch_seconds = Histogram(
            "flashgate_worker_batch_duration_seconds",
            "Time from a batch's arrival to its committed offsets.",
            buckets=_SECONDS,
            registry=registry,
        )
        self.inserted = Counter("flashgate_worker_orders_inserted_total", "Orders newly recorded.", registry=registry)
        self.duplicates = Counter(
            "flashgate_worker_duplicates_skipped_total", "Redelivered orders already recorded.", registry=registry
        )
        self.dlq = Counter("flashgate_worker_dlq_messages_total", "Poison messages sent to the DLQ.", registry=registry)
        self.refused = Counter(
            "flashgate_worker_refused_orders_total",
            "Orders the database refused (any is an incident: the gate oversold).",
            ["reason"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS:  # present at 0 from the start, so increase() sees the first refusal
            self.refused.labels(reason=reason)
        self.retries = Counter(
            "flashgate_worker_retries_total",
            "Batch steps retried after a transient failure.",
            ["stage"],
            registry=registry,
        )
        self.lag = Gauge(
            "flashgate_worker_consumer_lag_messages",
            "High watermark minus this worker's position, per assigned partition (the group view: monitor).",
            ["topic", "partition"],
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "flashgate_worker_commit_duration_seconds", "Synchronous offset commit latency.", buckets=_SECONDS,
            registry=registry,
        )  # fmt: skip
        self.pool_size = Gauge("flashgate_db_pool_open_connections", "Open connections in the pool.", registry=registry)
        self.pool_in_use = Gauge(
            "flashgate_db_pool_busy_connections", "Connections checked out of the pool.", registry=registry
        )
        self.pool_max = Gauge(
            "flashgate_db_pool_max_connections", "The pool's configured maximum size.", registry=registry
        )
        self.pool_waiters = Gauge("flashgate_db_pool_waiters", "Tasks waiting for a connection.", registry=registry)
        self.pool_acquire_seconds = Histogram(
            "flashgate_db_pool_acquire_duration_seconds",
            "Time to get a connection.",
            buckets=_SECONDS,
            registry=registry,
        )
