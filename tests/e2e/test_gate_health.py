"""The probes: live = the process serves; ready = started and Redis answers; Kafka down = degraded, still ready."""

from __future__ import annotations

import logging

from ops.stack.ports import free_port
from tests.support.gatekit import gate_settings, open_sale, order_headers, running_gate
from tests.support.sales import Sale
from tests.support.stackctl import StackHandle

PROBLEM = "application/problem+json"


def nothing_listens() -> str:
    return f"127.0.0.1:{free_port()}"


async def test_healthy_gate_is_ready_and_not_once_stopping(stack: StackHandle, name: str) -> None:
    async with running_gate(gate_settings(stack, name)) as (client, gate):
        ready = await client.get("/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "ok", "redis": "ok", "kafka": "ok"})
        assert "flashgate_gate_kafka_degraded 0.0" in (await client.get("/metrics")).text
        gate.stopping = True  # what stop() sets first: the load balancer must stop sending orders
        try:
            stopping = await client.get("/health/ready")
            assert (stopping.status_code, stopping.headers["content-type"]) == (503, PROBLEM)
            assert (stopping.json()["code"], stopping.json()["detail"]) == ("not_ready", "stopping")
            assert (await client.get("/health/live")).status_code == 200
        finally:
            gate.stopping = False


class Lines(logging.Handler):
    """The messages of one logger (Litestar's logging config replaces the root handlers caplog uses)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_kafka_unreachable_is_degraded_not_unready(stack: StackHandle, name: str) -> None:
    await open_sale(stack, Sale(sku=name, units=5))
    # Short producer timeouts, so the undelivered order does not hold the lifespan's flush for long.
    settings = gate_settings(
        stack, name, kafka_bootstrap=nothing_listens(), delivery_budget_ms=200, message_timeout_ms=1000,
        relay_stale_ms=2000,
    )  # fmt: skip
    lines = Lines()
    logging.getLogger("gate.core").addHandler(lines)
    try:
        async with running_gate(settings) as (client, _):
            ready = await client.get("/health/ready")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert (body["status"], body["redis"]) == ("degraded", "ok")
            assert body["kafka"] != "ok"
            assert "127.0.0.1" not in ready.text  # the reason is a code, never the broker's address
            assert "flashgate_gate_kafka_degraded 1.0" in (await client.get("/metrics")).text
            changes = [line for line in lines.lines if line.startswith("health: ")]
            # One line per change of state, not one per check.
            assert changes == [f"health: degraded (redis ok, kafka {body['kafka']})"]
            # Still admitting: the order waits in the outbox and the buyer hears `queued`.
            order = await client.post("/v1/orders", json={"sku": name, "qty": 1}, headers=order_headers("ann", "k1"))
            assert (order.status_code, order.json()["status"]) == (202, "queued")
    finally:
        logging.getLogger("gate.core").removeHandler(lines)


async def test_redis_unreachable_is_not_ready_but_live(stack: StackHandle, name: str) -> None:
    settings = gate_settings(stack, name, redis_url=f"redis://{nothing_listens()}/0")
    async with running_gate(settings) as (client, _):
        ready = await client.get("/health/ready")
        assert (ready.status_code, ready.headers["content-type"]) == (503, PROBLEM)
        assert 1 <= int(ready.headers["retry-after"]) <= 3  # jittered, as every 503 (gate/wire.py)
        body = ready.json()
        assert (body["code"], body["kafka"]) == ("not_ready", "ok")
        assert body["detail"] == f"redis: {body['redis']}"
        assert body["redis"] != "ok"
        assert (await client.get("/health/live")).status_code == 200
