"""The monitor's Prometheus metrics: consumer-group lag, outbox backlog, source health, drift."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge


class MonitorMetrics:
    """Gauges set after each check; label sets that disappear are removed, never left stale."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "flashgate_consumer_group_lag_messages",
            "High watermark minus the group's committed offset, per partition (read by the monitor), in messages: "
            "one per admission call (event version 2) or per order (version 1).",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.outbox_entries = Gauge(
            "flashgate_outbox_backlog_entries",
            "Entries in the SKU's Redis outbox, not yet known to be in Kafka: one per admission call, "
            "holding its 1-256 admitted orders.",
            ["sku"],
            registry=registry,
        )
        self.outbox_oldest_s = Gauge(
            "flashgate_outbox_oldest_entry_age_seconds",
            "Age of the oldest entry in the SKU's outbox (0 when empty), by Redis's clock.",
            ["sku"],
            registry=registry,
        )
        self.source_up = Gauge(
            "flashgate_monitor_source_up",
            "1 when the monitor's last check of the source (kafka, redis) succeeded, else 0.",
            ["source"],
            registry=registry,
        )
        self.checks = Counter(
            "flashgate_monitor_checks_total", "Checks by source and result (ok, failed).", ["source", "result"],
            registry=registry,
        )  # fmt: skip
        self.drift = Gauge(
            "flashgate_reconcile_drift_units",
            "Redis stock minus what the reconciler expects, per SKU (set only when a drift check is plugged in).",
            ["sku"],
            registry=registry,
        )
        self._seen: dict[str, set[tuple[str, ...]]] = {}

    def set_lag(self, group: str, topic: str, lag: Mapping[int, int]) -> None:
        self._replace("lag", self.lag, {(group, topic, str(p)): float(v) for p, v in lag.items()})

    def set_outbox(self, entries: Mapping[str, int], oldest_s: Mapping[str, float]) -> None:
        self._replace("outbox_entries", self.outbox_entries, {(s,): float(n) for s, n in entries.items()})
        self._replace("outbox_oldest_s", self.outbox_oldest_s, {(s,): a for s, a in oldest_s.items()})

    def set_drift(self, drift: Mapping[str, int]) -> None:
        self._replace("drift", self.drift, {(s,): float(d) for s, d in drift.items()})

    def forget(self, what: str) -> None:
        """Drop every series of one family (`lag`, `outbox`, `drift`): its source cannot be read."""
        if what == "outbox":
            self.set_outbox({}, {})
        else:
            self._replace(what, getattr(self, what), {})

    def check(self, source: str, ok: bool) -> None:
        self.source_up.labels(source).set(1 if ok else 0)
        self.checks.labels(source, "ok" if ok else "failed").inc()

    def _replace(self, key: str, gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        for gone in self._seen.get(key, set()) - set(values):
            gauge.remove(*gone)
        self._seen[key] = set(values)
