"""`flashgate bench app` on the test stack: it places real orders in process, and refuses a SKU not on sale."""

from __future__ import annotations

import asyncio

import pytest

from bench.app_only import AppBenchError, run_app
from tests.support.gatekit import create_topic, open_sale
from tests.support.sales import Sale
from tests.support.stackctl import StackHandle


@pytest.fixture
def app_env(stack: StackHandle, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    create_topic(stack, name)
    for key, value in {
        "REDIS_URL": stack.redis_url,
        "KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "FLASHGATE_TOPIC": name,
        "FLASHGATE_GATE_RELAY_DISCOVER_MS": "0",  # other tests' outboxes stay out of this topic
    }.items():
        monkeypatch.setenv(key, value)


@pytest.mark.usefixtures("app_env")
def test_bench_app_places_every_order_and_reports_cpu_per_order(stack: StackHandle, name: str) -> None:
    asyncio.run(open_sale(stack, Sale(sku=name, units=10_000)))
    run = run_app(name, orders=200, concurrency=8)
    assert run.statuses == {202: 200}
    assert run.loop_thread_us > 0
    assert run.process_us >= run.loop_thread_us * 0.9
    assert run.orders_per_admit_call >= 1
    assert "200 orders at concurrency 8" in run.line()


@pytest.mark.usefixtures("app_env")
def test_bench_app_refuses_a_sku_that_is_not_on_sale(name: str) -> None:
    with pytest.raises(AppBenchError, match="warm-up answers"):
        run_app(name, orders=10, concurrency=2)
