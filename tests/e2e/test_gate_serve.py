"""`flashgate gate` as real server processes: readiness, a cross-process last-unit race, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from flashgate import events, names
from gate.sales import Sale, put_sale
from tests.gatekit import consume_all, create_topic, redis_client
from tests.stackctl import FLASHGATE, StackHandle, eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served_gate(stack: StackHandle, name: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`flashgate gate --workers 2` on a free port, auth off, producing to topic `name`."""
    create_topic(stack, name, partitions=2)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": stack.redis_url,
        "KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "FLASHGATE_AUTH": "off",
        "FLASHGATE_TOPIC": name,
        "FLASHGATE_RELAY_DISCOVER_MS": "0",
        "FLASHGATE_DELIVERY_BUDGET_MS": "5000",
    }
    proc = subprocess.Popen(
        [FLASHGATE, "gate", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(ready, timeout_s=30, interval_s=0.2)
        yield proc, base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


async def orders(base: str, sku: str, users: range) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/v1/orders", json={"sku": sku, "qty": 1}, headers={"X-User-Id": f"u{i}", "Idempotency-Key": "k"}
                )
                for i in users
            )
        )


async def test_served_gate_race_and_graceful_shutdown(
    stack: StackHandle, name: str, served_gate: tuple[subprocess.Popen[bytes], str]
) -> None:
    proc, base = served_gate
    r = redis_client(stack)
    await put_sale(r, Sale(sku=f"{name}-last", units=1))
    await put_sale(r, Sale(sku=f"{name}-many", units=100))

    race = Counter(res.status_code for res in await orders(base, f"{name}-last", range(300)))
    assert race == {202: 1, 409: 299}, race
    many = await orders(base, f"{name}-many", range(20))
    assert [res.status_code for res in many] == [202] * 20

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    for sku in (f"{name}-last", f"{name}-many"):
        assert await r.xlen(names.outbox_key(sku)) == 0
    assert await r.get(names.stock_key(f"{name}-many")) == "80"
    await r.aclose()
    published = Counter(events.decode(m).order_id for m in consume_all(stack, name, expect=21, timeout_s=60))
    assert len(published) == 21
