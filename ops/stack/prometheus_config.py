"""Prometheus's config for the local stack, rendered from ops/prometheus/ (pure: dicts in, dicts out).

The repository's prometheus.yml and alerts.yml stay the one source: the stack copy only points
each job at the local ports, sets the intervals, makes every alert's runbook link absolute (so it
opens from the alert) and, when asked (tests, demos), replaces every alert's `for:` with one
shorter duration. Expressions and thresholds are never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ops.stack.errors import StackConfigError

SOURCE_DIR = Path(__file__).resolve().parents[1] / "prometheus"
REPO_DIR = SOURCE_DIR.parents[1]
# Where the rules' runbook links (`docs/runbooks.md#<alert>`, relative to the repository) point: e.g.
# the repository on the team's Git host. Default: this checkout, as a file:// URL.
RUNBOOK_BASE_ENV = "FLASHGATE_RUNBOOK_BASE_URL"
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


def runbook_base_url(env: Mapping[str, str]) -> str:
    """The base of the runbook links, from RUNBOOK_BASE_ENV (http, https or file URL) or this checkout."""
    raw = env.get(RUNBOOK_BASE_ENV) or REPO_DIR.as_uri()
    url = urlsplit(raw)
    if url.scheme not in ("http", "https", "file") or (url.scheme != "file" and not url.netloc):
        raise StackConfigError(f"{RUNBOOK_BASE_ENV} must be an http(s) or file URL, not {raw!r}")
    return raw if raw.endswith("/") else f"{raw}/"


def render_rules(source: dict[str, Any], *, alert_for_s: int, runbook_base: str = "") -> dict[str, Any]:
    """`source` (alerts.yml), with every alert's `for:` set to `alert_for_s` seconds unless that is 0,
    and relative runbook links prefixed with `runbook_base` (`runbook_base_url`) when given."""
    rules = copy.deepcopy(source)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            if alert_for_s:
                rule["for"] = f"{alert_for_s}s"
            notes = rule.get("annotations", {})
            if runbook_base and "runbook_url" in notes and "://" not in notes["runbook_url"]:
                notes["runbook_url"] = runbook_base + notes["runbook_url"]
    return rules
