"""On-call's view end to end: a real Prometheus scrapes gate, worker and monitor, and the lag alert fires.

The stack's Prometheus runs the repository's alerts.yml with its expressions and thresholds as
they are; only `for:` is shortened (`--prometheus-alert-for-s`), and promtool tests the real
durations (tests/unit/test_alert_rules.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.stack.ports import free_port
from ops.stack.prometheus_config import runbook_base_url
from tests.support.gatekit import redis_client
from tests.support.pipeline import Topics, WorkerProcess, add_product, create_topics, start_worker, wait_persisted
from tests.support.poll import eventually
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import FLASHGATE, StackHandle

LAG_HIGH = 1000  # ConsumerLagHigh's threshold in ops/prometheus/alerts.yml


class Processes:
    """Gate, monitor and worker of one test, all stopped at the end whatever happens."""

    def __init__(self, stack: StackHandle, topics: Topics, log_dir: Path) -> None:
        self.stack, self.topics, self.log_dir = stack, topics, log_dir
        self.ports = {"gate": free_port(), "worker": free_port(), "monitor": free_port()}
        self.env = {
            **os.environ,
            **stack.env,
            "FLASHGATE_GATE_AUTH": "off",
            "FLASHGATE_TOPIC": topics.orders,
            "FLASHGATE_GATE_RELAY_DISCOVER_MS": "0",
            # One message per order: the lag alerts count messages, so N orders make a lag of N
            # (event version 2 would put each tick's orders in one message).
            "FLASHGATE_GATE_EVENT_VERSION": "1",
        }
        self.spawned: list[subprocess.Popen[bytes]] = []
        self.workers: list[WorkerProcess] = []

    def spawn(self, *args: str) -> None:
        """`flashgate <args>` in its own process group, output in the test's folder."""
        with open(self.log_dir / f"{args[0]}.log", "ab") as log:
            proc = subprocess.Popen(
                [FLASHGATE, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.spawned.append(proc)

    def start_gate_and_monitor(self) -> None:
        self.spawn("gate", "--workers", "2", "--port", str(self.ports["gate"]))
        self.spawn("monitor", "--port", str(self.ports["monitor"]), "--interval-ms", "500",
                   "--group", self.topics.group, "--topic", self.topics.orders)  # fmt: skip
        eventually(lambda: ok(f"http://127.0.0.1:{self.ports['gate']}/health/ready"), timeout_s=60, interval_s=0.2)
        eventually(lambda: ok(f"http://127.0.0.1:{self.ports['monitor']}/metrics"), timeout_s=30, interval_s=0.2)

    def start_worker(self) -> WorkerProcess:
        log = self.log_dir / f"worker{len(self.workers)}.log"
        worker = start_worker(self.stack, self.topics, log, metrics_port=self.ports["worker"])
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        for proc in self.spawned:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


async def orders(base: str, sku: str, users: range) -> list[int]:
    """POST one order per user, at most 50 at a time (no pool deadline: the box may be busy); statuses."""
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, pool=None), limits=limits) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/orders", json={"sku": sku, "qty": 1}, headers={"X-User-Id": f"u{i}", "Idempotency-Key": "k"}
                )
                for i in users
            )
        )
    return [a.status_code for a in answers]


def ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def procs(stack: StackHandle, name: str, tmp_path: Path) -> Iterator[Processes]:
    p = Processes(stack, create_topics(stack, name, partitions=3), tmp_path)
    try:
        yield p
    finally:
        p.close()


def prometheus(stack: StackHandle, p: Processes) -> str:
    """Turn the stack's Prometheus on, scraping this test's processes every second; its base URL."""
    done = stack.run(
        "up", "--free-ports", "--with-prometheus",
        "--gate-port", str(p.ports["gate"]),
        "--worker-metrics-port", str(p.ports["worker"]),
        "--monitor-port", str(p.ports["monitor"]),
        "--prometheus-interval-s", "1",
        "--prometheus-alert-for-s", "2",
    )  # fmt: skip
    urls = [ln.split(" ", 1)[1] for ln in done.stdout.splitlines() if ln.startswith("prometheus: ")]
    assert urls, done.stdout
    return urls[0]


def api(base: str, path: str, **params: str) -> Any:
    res = httpx.get(f"{base}/api/v1/{path}", params=params, timeout=5)
    res.raise_for_status()
    body = res.json()
    assert body["status"] == "success", body
    return body["data"]


def lag_alerts(base: str, group: str) -> list[dict[str, Any]]:
    return [
        a
        for a in api(base, "alerts")["alerts"]
        if a["labels"]["alertname"] == "ConsumerLagHigh" and a["labels"].get("group") == group
    ]


def query(base: str, promql: str) -> float | None:
    result = api(base, "query", query=promql)["result"]
    return float(result[0]["value"][1]) if result else None


async def test_stopped_worker_fires_the_lag_alert_through_prometheus(
    stack: StackHandle, name: str, procs: Processes
) -> None:
    base = prometheus(stack, procs)
    await add_product(stack.database_url, name, 2000)
    r = redis_client(stack)
    await put_sale(r, Sale(sku=name, units=2000))
    await r.aclose()
    procs.start_gate_and_monitor()
    worker = procs.start_worker()
    gate = f"http://127.0.0.1:{procs.ports['gate']}"

    assert await orders(gate, name, range(20)) == [202] * 20
    assert len((await wait_persisted(stack.database_url, name, 20)).order_ids) == 20

    def scraped() -> bool:
        up = {t["labels"]["job"]: t["health"] for t in api(base, "targets")["activeTargets"]}
        return up == {"flashgate-gate": "up", "flashgate-worker": "up", "flashgate-monitor": "up"}

    eventually(scraped, timeout_s=30, interval_s=0.5)
    # The gate runs 2 processes; whichever answers the scrape reports the sum over both.
    accepted = 'sum(flashgate_gate_requests_total{status="202"})'
    eventually(lambda: query(base, accepted) == 20, timeout_s=30, interval_s=0.5)
    assert lag_alerts(base, procs.topics.group) == []

    assert worker.terminate() == 0
    more = LAG_HIGH + 200
    assert await orders(gate, name, range(20, 20 + more)) == [202] * more

    def firing() -> bool:
        # The alert's value is its last evaluation, of the last scrape of the monitor's last
        # sample: on a loaded box it can fire on a sample taken while the orders were arriving.
        alerts = lag_alerts(base, procs.topics.group)
        return [(a["state"], float(a["value"])) for a in alerts] == [("firing", float(more))]

    await asyncio.to_thread(eventually, firing, timeout_s=60, interval_s=0.5)
    (alert,) = lag_alerts(base, procs.topics.group)
    assert alert["labels"] == {
        "alertname": "ConsumerLagHigh",
        "group": procs.topics.group,
        "topic": procs.topics.orders,
        "severity": "warning",
    }
    assert alert["annotations"]["runbook_url"] == f"{runbook_base_url(os.environ)}docs/runbooks.md#consumerlaghigh"
    assert float(alert["value"]) == more
    assert (
        alert["annotations"]["summary"]
        == f"Consumer group {procs.topics.group} is {more} messages behind on {procs.topics.orders}"
    )

    # The worker comes back and drains: the lag returns to 0 and the alert resolves.
    procs.start_worker()
    assert len((await wait_persisted(stack.database_url, name, 20 + more)).order_ids) == 20 + more
    await asyncio.to_thread(
        eventually, lambda: lag_alerts(base, procs.topics.group) == [], timeout_s=60, interval_s=0.5
    )
