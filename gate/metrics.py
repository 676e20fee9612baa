"""Prometheus metrics of one gate process, in a registry of its own (built in the app factory)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GateMetrics:
    """Counts and latencies; `/metrics` renders `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "flashgate_gate_answers",
            "Answers to POST /v1/orders by problem code",
            ["status", "code"],
            registry=self.registry,
        )
        self.handoff = Counter(
            "flashgate_gate_handoff", "Admitted orders by Kafka handoff result", ["result"], registry=self.registry
        )
        self.relayed = Counter("flashgate_relay_republished", "Outbox entries republished", registry=self.registry)
        self.soldout_cache_hits = Counter(
            "flashgate_gate_soldout_cache_hits", "Requests answered from the sold-out cache", registry=self.registry
        )
        self.inflight = Gauge("flashgate_gate_inflight", "Admissions in flight", registry=self.registry)
        self.breaker_open = Gauge(
            "flashgate_gate_redis_breaker_open", "1 while the breaker is open", registry=self.registry
        )
        self.latency = Histogram(
            "flashgate_gate_order_seconds",
            "POST /v1/orders latency",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
