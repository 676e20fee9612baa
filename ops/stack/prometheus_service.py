"""Prometheus from Debian's `prometheus` package, optional (`stack up --with-prometheus`), loopback only."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import yaml

from ops.stack import process
from ops.stack.prometheus_config import SOURCE_DIR, render_config, render_rules, runbook_base_url
from ops.stack.service import Service, require_binary


class PrometheusService(Service):
    """Scrapes the gate, worker and monitor at the ports in the stack settings; evaluates alerts.yml.

    Its config is rendered at every start; a running Prometheus whose rendered config changed
    (other ports or intervals) is restarted so it never scrapes stale targets.
    """

    name = "prometheus"
    port_setting = "prometheus_port"
    start_timeout_s = 60.0

    def check_installed(self) -> None:
        require_binary("prometheus", "prometheus")

    def prepare(self) -> None:
        self._render()

    def start(self) -> None:
        if self.pid() is not None and self._render():
            self.stop()
        super().start()

    def launch(self) -> None:
        process.spawn(
            [
                require_binary("prometheus", "prometheus"),
                f"--config.file={self.home / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=2d",
            ],
            log_path=self.log_path,
            pid_path=self.pid_path,
            cwd=self.home,
        )

    def probe(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def _render(self) -> bool:
        """Write prometheus.yml and alerts.yml into the state folder; True when either changed."""
        s = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        rules_path = self.home / "alerts.yml"
        config = render_config(
            yaml.safe_load((SOURCE_DIR / "prometheus.yml").read_text()),
            ports={
                "gate_port": s.gate_port,
                "worker_metrics_port": s.worker_metrics_port,
                "monitor_port": s.monitor_port,
            },
            interval_s=s.prometheus_interval_s,
            rules_path=str(rules_path),
        )
        rules = render_rules(
            yaml.safe_load((SOURCE_DIR / "alerts.yml").read_text()),
            alert_for_s=s.prometheus_alert_for_s,
            runbook_base=runbook_base_url(os.environ),
        )
        changed = False
        for path, doc in ((self.home / "prometheus.yml", config), (rules_path, rules)):
            text = yaml.safe_dump(doc, sort_keys=False, width=200)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                changed = True
        return changed
