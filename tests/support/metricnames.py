"""What the code exports to Prometheus, and which flashgate metric names a PromQL text refers to."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from gate.metrics import GateMetrics
from ops.monitor.metrics import MonitorMetrics
from worker.metrics import WorkerMetrics

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_NAME = re.compile(r"\bflashgate_[a-zA-Z0-9_]+")


def exported_series_names() -> set[str]:
    """Every sample name the gate, worker and monitor metrics classes expose (`_total`, `_bucket`…)."""
    worker, monitor = CollectorRegistry(), CollectorRegistry()
    WorkerMetrics(worker)
    MonitorMetrics(monitor)
    names: set[str] = set()
    for registry in (GateMetrics().registry, worker, monitor):
        for family in registry.collect():
            names.update(family.name + s for s in _SUFFIXES[family.type])
    return names


def referenced_names(promql: str) -> set[str]:
    """The `flashgate_…` metric names a PromQL expression (or any text) mentions."""
    return set(_NAME.findall(promql))
