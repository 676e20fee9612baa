"""A buyer's traceparent followed from the request to the row: Kafka header, worker line, row, `order show`."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.cli import cli
from tests.support.gatekit import gate_settings, open_sale, place_each, running_gate
from tests.support.kafkautil import consume_orders
from tests.support.pipeline import add_product, create_topics, start_worker, trace_ids, wait_persisted
from tests.support.sales import Sale
from tests.support.stackctl import StackHandle

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize("version", [2, 1])  # one message for the three orders, one message each
async def test_a_traceparent_is_kept_from_the_202_to_the_row(
    stack: StackHandle, name: str, tmp_path: Path, version: int
) -> None:
    topics = create_topics(stack, name, partitions=1)
    await add_product(stack.database_url, name, 10)
    await open_sale(stack, Sale(sku=name, units=10))
    worker = start_worker(stack, topics, tmp_path / "worker.log")
    try:
        async with running_gate(gate_settings(stack, topics.orders, event_version=version)) as (client, _gate):
            sent = {
                "traced": {"traceparent": TRACEPARENT},
                "untraced": {},
                "invalid": {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},  # all-zero trace id: ignored
            }
            order_ids = await place_each(client, name, sent, together=True)
        state = await wait_persisted(stack.database_url, name, 3)
        assert len(state.order_ids) == 3, worker.log()[-2000:]
        rows = await trace_ids(stack.database_url, name)
        assert {who: rows[order_id] for who, order_id in order_ids.items()} == {
            "traced": uuid.UUID(hex=TRACE),
            "untraced": None,
            "invalid": None,
        }
        orders = consume_orders(stack.kafka_bootstrap, topics.orders, 3)
        consumed = {o.event.order_id: o.trace for o in orders}
        assert {who: consumed[uuid.UUID(order_id)] for who, order_id in order_ids.items()} == {
            "traced": TRACEPARENT,  # version 2: inside the message; 1: the message's header
            "untraced": "",
            "invalid": "",
        }
        assert len({o.message.offset() for o in orders}) == (1 if version == 2 else 3)
        assert f"traces={TRACE}" in worker.log()
    finally:
        worker.close()
    env = {"DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url}
    shown = await asyncio.to_thread(CliRunner().invoke, cli, ["order", "show", order_ids["traced"]], env=env)
    assert f"trace id: {TRACE}" in shown.output, shown.output
    untraced = await asyncio.to_thread(CliRunner().invoke, cli, ["order", "show", order_ids["untraced"]], env=env)
    assert "trace id: none (sent without a traceparent" in untraced.output, untraced.output
