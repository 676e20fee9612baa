"""Prometheus's config for the local stack, rendered from ops/prometheus/ (pure: dicts in, dicts out).

The repository's prometheus.yml and alerts.yml stay the one source: the stack copy only points
each job at the local ports, sets the intervals and, when asked (tests, demos), replaces every
alert's `for:` with one shorter duration. Expressions and thresholds are never changed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ops.stack.errors import StackConfigError

SOURCE_DIR = Path(__file__).resolve().parents[1] / "prometheus"
JOB_PORTS = {
    "flashgate-gate": "gate_port",
    "flashgate-worker": "worker_metrics_port",
    "flashgate-monitor": "monitor_port",
}


def render_config(source: dict[str, Any], *, ports: dict[str, int], interval_s: int, rules_path: str) -> dict[str, Any]:
    """`source` (prometheus.yml) with loopback targets from `ports` (JOB_PORTS values), intervals, rules."""
    config = copy.deepcopy(source)
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": f"{interval_s}s",
        "evaluation_interval": f"{interval_s}s",
        "scrape_timeout": f"{min(interval_s, 10)}s",
    }
    config["rule_files"] = [rules_path]
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    if set(jobs) != set(JOB_PORTS):
        raise StackConfigError(f"ops/prometheus/prometheus.yml must scrape exactly the jobs {sorted(JOB_PORTS)}")
    for name, job in jobs.items():
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[JOB_PORTS[name]]}"]}]
    return config


def render_rules(source: dict[str, Any], *, alert_for_s: int) -> dict[str, Any]:
    """`source` (alerts.yml), with every alert's `for:` set to `alert_for_s` seconds unless that is 0."""
    rules = copy.deepcopy(source)
    if alert_for_s:
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["for"] = f"{alert_for_s}s"
    return rules
