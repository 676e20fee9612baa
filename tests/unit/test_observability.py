"""Pure parts of observability: the stack's Prometheus config, its settings, lag and outbox arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from flashgate.settings import ConfigError
from ops.monitor.lag import partition_lag
from ops.monitor.metrics import MonitorMetrics
from ops.monitor.outbox import entry_age_s
from ops.monitor.settings import MonitorSettings
from ops.stack.errors import StackConfigError
from ops.stack.prometheus_config import RUNBOOK_BASE_ENV, SOURCE_DIR, render_config, render_rules, runbook_base_url
from ops.stack.settings import resolve

PORTS = {"gate_port": 1, "worker_metrics_port": 2, "monitor_port": 3}


def source(name: str) -> dict[str, object]:
    doc: dict[str, object] = yaml.safe_load((SOURCE_DIR / name).read_text())
    return doc


def test_rendered_config_scrapes_the_local_ports_with_the_interval() -> None:
    config = render_config(source("prometheus.yml"), ports=PORTS, interval_s=1, rules_path="/x/alerts.yml")
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert targets == {
        "flashgate-gate": ["127.0.0.1:1"],
        "flashgate-worker": ["127.0.0.1:2"],
        "flashgate-monitor": ["127.0.0.1:3"],
    }
    assert config["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
    assert config["rule_files"] == ["/x/alerts.yml"]
    assert (
        render_config(source("prometheus.yml"), ports=PORTS, interval_s=30, rules_path="r")["global"]["scrape_timeout"]
        == "10s"
    )


def test_a_config_without_the_three_jobs_is_refused() -> None:
    broken = {"scrape_configs": [{"job_name": "flashgate-gate", "static_configs": []}]}
    with pytest.raises(StackConfigError, match="must scrape exactly the jobs"):
        render_config(broken, ports=PORTS, interval_s=1, rules_path="r")


def test_rendered_rules_change_only_the_for_durations() -> None:
    original = source("alerts.yml")
    assert render_rules(original, alert_for_s=0) == original
    short = render_rules(original, alert_for_s=2)
    pairs = [
        (a, b) for ga, gb in zip(original["groups"], short["groups"], strict=True)  # type: ignore[call-overload]
        for a, b in zip(ga["rules"], gb["rules"], strict=True)
    ]  # fmt: skip
    assert all(b["for"] == "2s" for _, b in pairs)
    assert all(
        {k: v for k, v in a.items() if k != "for"} == {k: v for k, v in b.items() if k != "for"} for a, b in pairs
    )


def test_rendered_rules_make_runbook_links_absolute() -> None:
    base = runbook_base_url({RUNBOOK_BASE_ENV: "https://git.example.com/flashgate/blob/main"})
    assert base == "https://git.example.com/flashgate/blob/main/"
    rules = render_rules(source("alerts.yml"), alert_for_s=0, runbook_base=base)
    links = [r["annotations"]["runbook_url"] for g in rules["groups"] for r in g["rules"]]
    assert links
    assert all(link.startswith(f"{base}docs/runbooks.md#") for link in links)
    assert render_rules(rules, alert_for_s=0, runbook_base=base) == rules  # absolute links stay as they are
    # By default, this checkout's docs/runbooks.md: a link that opens on this machine.
    local = runbook_base_url({})
    assert local.startswith("file:///")
    assert Path(local.removeprefix("file://").rstrip("/"), "docs", "runbooks.md").is_file()


@pytest.mark.parametrize("bad", ["README.md", "ftp://x/", "https://", "git.example.com/flashgate"])
def test_a_runbook_base_that_is_not_a_url_is_refused(bad: str) -> None:
    with pytest.raises(StackConfigError, match=f"{RUNBOOK_BASE_ENV} must be an http\\(s\\) or file URL"):
        runbook_base_url({RUNBOOK_BASE_ENV: bad})


def test_prometheus_settings_are_saved_and_validated(tmp_path: Path) -> None:
    s = resolve(
        str(tmp_path), {}, env={}, prometheus={"gate_port": 8100, "prometheus_interval_s": 1}, with_prometheus=True
    )
    s.save()
    again = resolve(str(tmp_path), {}, env={})
    assert (again.with_prometheus, again.gate_port, again.prometheus_interval_s) == (True, 8100, 1)
    assert (again.worker_metrics_port, again.monitor_port, again.prometheus_alert_for_s) == (9101, 9102, 0)
    assert json.loads((tmp_path / "stack.json").read_text())["prometheus_port"] == 19090
    with pytest.raises(StackConfigError, match="--gate-port 0"):
        resolve(str(tmp_path), {}, env={}, prometheus={"gate_port": 0})
    with pytest.raises(StackConfigError, match="prometheus-interval-s"):
        resolve(str(tmp_path), {}, env={}, prometheus={"prometheus_interval_s": 0})


@pytest.mark.parametrize(
    ("committed", "low", "high", "lag"),
    [
        (5, 0, 5, 0),  # caught up
        (3, 0, 10, 7),
        (-1001, 0, 4, 4),  # never committed: from the start
        (-1001, 6, 10, 4),  # never committed, retention removed the first messages
        (2, 6, 10, 4),  # committed offset removed by retention: resumes at low
        (0, 0, 0, 0),
    ],
)
def test_partition_lag(committed: int, low: int, high: int, lag: int) -> None:
    assert partition_lag(committed, low, high) == lag


def test_entry_age_is_measured_by_redis_time() -> None:
    assert entry_age_s("1700000000000-3", 1700000002500) == 2.5
    assert entry_age_s(None, 1700000002500) == 0.0
    assert entry_age_s("1700000009000-0", 1700000002500) == 0.0  # never negative


def test_monitor_settings_from_env_and_their_errors() -> None:
    env = {"REDIS_URL": "redis://r", "KAFKA_BOOTSTRAP": "k:1", "FLASHGATE_MONITOR_INTERVAL_MS": "700"}
    s = MonitorSettings.from_env({"port": 9200, "group": None}, env)
    assert (s.port, s.interval_ms, s.group, s.topic) == (9200, 700, "flashgate-writers", "orders")
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP is not set"):
        MonitorSettings.from_env({}, {"REDIS_URL": "redis://r"})
    with pytest.raises(ConfigError, match="FLASHGATE_MONITOR_PORT='x': expected `int`"):
        MonitorSettings.from_env({}, {**env, "FLASHGATE_MONITOR_PORT": "x"})
    with pytest.raises(ConfigError, match="FLASHGATE_MONITOR_PORT=70000: expected `int` <= 65535"):
        MonitorSettings.from_env({"port": 70000}, env)
    with pytest.raises(ConfigError, match="FLASHGATE_MONITOR_INTERVAL_MS=5: expected `int` >= 100"):
        MonitorSettings.from_env({"interval_ms": 5}, env)


def test_monitor_gauges_drop_label_sets_that_disappear() -> None:
    registry = CollectorRegistry()
    m = MonitorMetrics(registry)
    m.set_lag("g", "t", {0: 3, 1: 4})
    m.set_outbox({"a": 2, "b": 1}, {"a": 1.5, "b": 0.0})
    m.set_lag("g", "t", {1: 0})
    m.set_outbox({"b": 0}, {"b": 0.0})
    text = generate_latest(registry).decode()
    assert 'partition="0"' not in text
    assert 'flashgate_consumer_group_lag_messages{group="g",partition="1",topic="t"} 0.0' in text
    assert 'sku="a"' not in text
    m.forget("lag")
    m.forget("outbox")
    text = generate_latest(registry).decode()
    assert "flashgate_consumer_group_lag_messages{" not in text
    assert "flashgate_outbox_backlog_entries{" not in text
