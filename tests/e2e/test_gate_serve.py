"""`flashgate gate` as real server processes: readiness, a cross-process last-unit race, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flashgate import events, names
from gate.admission import AdmitRequest
from tests.support.gatekit import admission_client, consume_all, create_topic, redis_client, until
from tests.support.procs import GateProcess
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import FLASHGATE, StackHandle, eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`flashgate <args>` in its own process group (so a failed test can kill all of it)."""
    out = subprocess.DEVNULL
    return subprocess.Popen([FLASHGATE, *args], env=env, stdout=out, stderr=out, start_new_session=True)


@pytest.fixture
def served_gate(stack: StackHandle, name: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`flashgate gate --workers 2` on a free port, auth off, producing to topic `name`."""
    create_topic(stack, name, partitions=2)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": stack.redis_url,
        "KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "FLASHGATE_GATE_AUTH": "off",
        "FLASHGATE_TOPIC": name,
        "FLASHGATE_GATE_RELAY_DISCOVER_MS": "0",
        "FLASHGATE_GATE_DELIVERY_BUDGET_MS": "5000",
    }
    proc = spawn(["gate", "--workers", "2", "--port", str(port)], env)
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


async def test_relay_command_publishes_stranded_orders_and_stops_on_sigterm(stack: StackHandle, name: str) -> None:
    # Orders admitted by a gate that died before producing them: only the outbox has them.
    create_topic(stack, name)
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=5))
        stranded = [await client.admit(AdmitRequest(name, f"u{i}", "k", 1)) for i in range(3)]
        env = {
            **os.environ,
            "REDIS_URL": stack.redis_url,
            "KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "FLASHGATE_TOPIC": name,
            "FLASHGATE_GATE_MESSAGE_TIMEOUT_MS": "1000",
            "FLASHGATE_GATE_RELAY_STALE_MS": "1100",
            "FLASHGATE_GATE_RELAY_INTERVAL_MS": "100",
        }
        proc = spawn(["relay"], env)
        try:

            async def drained() -> bool:
                return await r.xlen(names.outbox_key(name)) == 0

            await until(drained, timeout_s=60, what="relay drained the outbox")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    # The relay covers every outbox it discovers; ours must each be there exactly once.
    published = Counter(str(events.decode(m).order_id) for m in consume_all(stack, name, expect=3, timeout_s=60))
    assert {a.order_id: published[a.order_id] for a in stranded} == {a.order_id: 1 for a in stranded}


def test_a_served_gate_logs_one_json_object_per_line(stack: StackHandle, tmp_path: Path) -> None:
    """`FLASHGATE_LOG_FORMAT=json`: the parent and the server process (with Litestar and granian in it)
    write the same keys, and no other format slips in."""
    env = {"FLASHGATE_LOG_FORMAT": "json", "FLASHGATE_LOG_LEVEL": "INFO"}
    gate = GateProcess.start(stack, tmp_path / "gate.log", workers=1, env=env)
    try:
        assert httpx.get(f"{gate.base_url}/health/live", timeout=5).status_code == 200
        assert gate.terminate() == 0
    finally:
        gate.close()
    lines = [line for line in gate.log().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one object
    assert {"ts", "level", "logger", "msg"} <= set.intersection(*(set(p) for p in parsed))
    assert {"gate.serve", "gate.core"} <= {p["logger"] for p in parsed}
