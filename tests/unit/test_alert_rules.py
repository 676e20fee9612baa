"""The alert rules: promtool checks and unit tests, and each rule's metrics, annotations and runbook."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.metricnames import exported_series_names, referenced_names

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "ops" / "prometheus"
IN_CI = os.environ.get("CI", "").lower() == "true"


def promtool(*args: str) -> str:
    binary = shutil.which("promtool")
    if binary is None:
        if IN_CI:
            pytest.fail("promtool is not installed (Debian package prometheus; run make bootstrap)", pytrace=False)
        pytest.skip("promtool is not installed (Debian package prometheus; run make bootstrap)")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules_and_the_config() -> None:
    out = promtool("check", "rules", str(PROM / "alerts.yml"))
    assert f"SUCCESS: {len(rules())} rules found" in out
    promtool("check", "config", str(PROM / "prometheus.yml"))


def test_promtool_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(PROM / "alerts_test.yml"))


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fired = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    alerts = {r["alert"] for r in rules()}
    assert alerts - fired == set(), "alerts never seen firing in alerts_test.yml"
    assert alerts - quiet == set(), "alerts never checked to stay quiet in alerts_test.yml"


def test_every_alert_names_only_metrics_the_code_exports() -> None:
    exported = exported_series_names()
    for rule in rules():
        used = referenced_names(rule["expr"])
        assert used or rule["expr"].startswith("up{"), rule["alert"]
        assert used <= exported, f"{rule['alert']} uses metrics nobody exports: {used - exported}"


def test_every_alert_has_summary_description_severity_and_a_runbook() -> None:
    page = (ROOT / "docs" / "runbooks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^## (.+)$", page, re.M)}
    for rule in rules():
        name, notes = rule["alert"], rule["annotations"]
        assert notes.get("summary"), name
        assert notes.get("description"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert notes["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbooks.md has no '## {name}' section"
