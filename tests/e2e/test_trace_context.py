"""A buyer's traceparent followed from the request to the row: Kafka header, worker line, row, `order show`."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
from click.testing import CliRunner

from ops.cli import cli
from tests.gatekit import gate_settings, open_sale, order_headers, running_gate
from tests.kafkautil import consume
from tests.pipeline import add_product, create_topics, start_worker, wait_persisted
from tests.stackctl import StackHandle
from tests.support.sales import Sale

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


async def test_a_traceparent_is_kept_from_the_202_to_the_row(stack: StackHandle, name: str, tmp_path: Path) -> None:
    topics = create_topics(stack, name, partitions=1)
    await add_product(stack.database_url, name, 10)
    await open_sale(stack, Sale(sku=name, units=10))
    worker = start_worker(stack, topics, tmp_path / "worker.log")
    try:
        async with running_gate(gate_settings(stack, topics.orders)) as (client, _gate):
            sent = {
                "traced": {"traceparent": TRACEPARENT},
                "untraced": {},
                "invalid": {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},  # all-zero trace id: ignored
            }
            order_ids = {}
            for who, extra in sent.items():
                answer = await client.post(
                    "/v1/orders", json={"sku": name, "qty": 1}, headers={**order_headers(who, who), **extra}
                )
                assert answer.status_code == 202, answer.text
                order_ids[who] = uuid.UUID(answer.json()["order_id"])
        state = await wait_persisted(stack.database_url, name, 3)
        assert len(state.order_ids) == 3, worker.log()[-2000:]
        conn = await asyncpg.connect(stack.database_url)
        try:
            rows = {r["order_id"]: r["trace_id"] for r in await conn.fetch("SELECT * FROM orders WHERE sku = $1", name)}
        finally:
            await conn.close()
        assert rows == {
            order_ids["traced"]: uuid.UUID(hex=TRACE),
            order_ids["untraced"]: None,
            order_ids["invalid"]: None,
        }
        headers = {m.value(): m.headers() for m in consume(stack.kafka_bootstrap, topics.orders, 3)}
        assert sorted(map(str, headers.values())) == sorted(
            map(str, [[("traceparent", TRACEPARENT.encode())], None, None])
        )
        assert f"traces={TRACE}" in worker.log()
    finally:
        worker.close()
    env = {"DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url}
    shown = await asyncio.to_thread(CliRunner().invoke, cli, ["order", "show", str(order_ids["traced"])], env=env)
    assert f"trace id: {TRACE}" in shown.output, shown.output
    untraced = await asyncio.to_thread(CliRunner().invoke, cli, ["order", "show", str(order_ids["untraced"])], env=env)
    assert "trace id: none (sent without a traceparent" in untraced.output, untraced.output
