"""`flashgate gate` as real server processes: readiness, a cross-process last-unit race, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flashgate import names
from gate.admission import AdmitRequest
from tests.support.gatekit import admission_client, consume_all, create_topic, redis_client
from tests.support.poll import until
from tests.support.procs import FlashgateProcess, GateProcess, gate_env
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import StackHandle


@pytest.fixture
def served_gate(stack: StackHandle, name: str, tmp_path: Path) -> Iterator[GateProcess]:
    """`flashgate gate --workers 2` on a free port, auth off, producing to topic `name`."""
    create_topic(stack, name, partitions=2)
    settings: dict[str, object] = {"topic": name, "relay_discover_ms": 0, "delivery_budget_ms": 5000}
    gate = GateProcess.start(stack, tmp_path / "gate.log", 2, settings)
    yield gate
    gate.close()


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


async def test_served_gate_race_and_graceful_shutdown(stack: StackHandle, name: str, served_gate: GateProcess) -> None:
    base = served_gate.base_url
    r = redis_client(stack)
    await put_sale(r, Sale(sku=f"{name}-last", units=1))
    await put_sale(r, Sale(sku=f"{name}-many", units=100))

    race = Counter(res.status_code for res in await orders(base, f"{name}-last", range(300)))
    assert race == {202: 1, 409: 299}, race
    many = await orders(base, f"{name}-many", range(20))
    assert [res.status_code for res in many] == [202] * 20

    assert served_gate.terminate() == 0
    for sku in (f"{name}-last", f"{name}-many"):
        assert await r.xlen(names.outbox_key(sku)) == 0
    assert await r.get(names.stock_key(f"{name}-many")) == "80"
    await r.aclose()
    published = Counter(e.order_id for e in consume_all(stack, name, expect=21, timeout_s=60))
    assert len(published) == 21


async def test_relay_command_publishes_stranded_orders_and_stops_on_sigterm(
    stack: StackHandle, name: str, tmp_path: Path
) -> None:
    # Orders admitted by a gate that died before producing them: only the outbox has them.
    create_topic(stack, name)
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=5))
        stranded = [await client.admit(AdmitRequest(name, f"u{i}", "k", 1)) for i in range(3)]
        settings: dict[str, object] = {"topic": name, "message_timeout_ms": 1000, "relay_stale_ms": 1100}
        relay = FlashgateProcess.spawn(
            ["relay"], gate_env(stack, **settings, relay_interval_ms=100), tmp_path / "relay.log"
        )
        try:

            async def drained() -> bool:
                return await r.xlen(names.outbox_key(name)) == 0

            await until(drained, timeout_s=60, what="relay drained the outbox")
            assert relay.terminate() == 0
        finally:
            relay.close()
    # The relay covers every outbox it discovers, other tests' too; ours must each be there exactly once.
    published = Counter(str(e.order_id) for e in consume_all(stack, name, expect=3, sku=name, timeout_s=60))
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
