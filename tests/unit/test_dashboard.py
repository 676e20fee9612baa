"""The Grafana dashboard: valid JSON, every panel queries metrics the code exports, every metric is shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.metricnames import exported_series_names, referenced_names

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "flashgate.json"
_SUFFIXES = ("_bucket", "_sum", "_count")


def family(series: str) -> str:
    """A histogram's series name → its family name; other names unchanged."""
    for suffix in _SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_every_panel_queries_only_metrics_the_code_exports() -> None:
    exported = exported_series_names()
    assert panels()
    for panel in panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = referenced_names(target["expr"])
            assert used, f"{panel['title']}: {target['expr']} names no flashgate metric"
            assert used <= exported, f"{panel['title']}: nobody exports {used - exported}"


def test_every_exported_metric_is_on_the_dashboard() -> None:
    shown = {family(n) for p in panels() for t in p["targets"] for n in referenced_names(t["expr"])}
    assert {family(n) for n in exported_series_names()} - shown == set()


def test_panel_ids_are_unique_and_refids_distinct_per_panel() -> None:
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
