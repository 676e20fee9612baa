"""`flashgate order show ID` on the test stack: each stage from the outbox to the row, and each refusal."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
from click.testing import CliRunner, Result

from gate.admission import AdmitRequest
from ops.cli import cli
from tests.support.gatekit import admission_client, outbox_client
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import StackHandle

DEAD_REDIS = "redis://127.0.0.1:1/0"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def show(stack: StackHandle, order_id: str, *extra: str, redis_url: str | None = None) -> Result:
    env = {"DATABASE_URL": stack.database_url, "REDIS_URL": redis_url or stack.redis_url}
    return CliRunner().invoke(cli, ["order", "show", order_id, *extra], env=env)


async def _admit(stack: StackHandle, sku: str) -> tuple[str, str]:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=sku, units=5))
        a = await client.admit(AdmitRequest(sku=sku, user="buyer-1", key="k-1", qty=2, trace=TRACEPARENT))
        return a.order_id, a.stream_id


async def _ack(stack: StackHandle, sku: str, stream_id: str) -> None:
    async with outbox_client(stack) as outbox:
        assert await outbox.ack(sku, [stream_id]) == 1


async def _insert(stack: StackHandle, table: str, order_id: str, sku: str, **extra: str) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        cols = ["order_id", "sku", "user_id", "qty", "idempotency_key", "accepted_at", "kafka_partition",
                "kafka_offset", *extra]  # fmt: skip
        values = [uuid.UUID(order_id), sku, "buyer-1", 2, "k-1", datetime.now(UTC), 3, 41, *extra.values()]
        marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        await conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", *values)
    finally:
        await conn.close()


def test_an_order_is_followed_from_the_outbox_to_its_row(stack: StackHandle, name: str) -> None:
    order_id, stream_id = asyncio.run(_admit(stack, name))
    queued = show(stack, order_id)
    assert queued.exit_code == 0, queued.output
    assert queued.output.splitlines()[0] == f"order {order_id}: queued"
    assert f"outbox entry: {stream_id}" in queued.output
    assert f"trace id: {TRACE}" in queued.output  # from the outbox entry while it waits there
    assert "user: buyer-1" in queued.output

    asyncio.run(_ack(stack, name, stream_id))
    accepted = show(stack, order_id, "--json")
    assert accepted.exit_code == 0
    got = json.loads(accepted.output)
    assert (got["stage"], got["found"], got["outbox_entry"], got["indexed"]) == ("accepted", True, None, True)

    asyncio.run(_insert(stack, "orders", order_id, name))
    persisted = show(stack, order_id)
    assert persisted.exit_code == 0
    assert persisted.output.splitlines()[0] == f"order {order_id}: persisted"
    assert "kafka: 3/41" in persisted.output
    assert "idempotency key: k-1" in persisted.output


def test_a_refused_order_says_why(stack: StackHandle, name: str) -> None:
    order_id = str(uuid.uuid4())
    asyncio.run(_insert(stack, "refused_orders", order_id, name, reason="oversell"))
    result = show(stack, order_id)
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == f"order {order_id}: refused"
    assert "refused reason: oversell" in result.output


def test_an_unknown_order_exits_1_and_a_malformed_id_exits_2(stack: StackHandle) -> None:
    unknown = str(uuid.uuid4())
    result = show(stack, unknown)
    assert result.exit_code == 1
    assert f"{unknown} is in neither PostgreSQL nor Redis's order index" in result.output
    malformed = show(stack, "not-a-uuid")
    assert malformed.exit_code == 2
    assert "is not an order id" in malformed.output


def test_redis_down_still_shows_the_row_and_exits_1(stack: StackHandle, name: str) -> None:
    order_id = str(uuid.uuid4())
    asyncio.run(_insert(stack, "orders", order_id, name))
    result = show(stack, order_id, redis_url=DEAD_REDIS)
    assert result.exit_code == 1
    assert f"order {order_id}: persisted" in result.output
    assert "flashgate order show: Redis: ConnectionError" in result.output


def test_a_missing_url_is_one_line() -> None:
    result = CliRunner().invoke(cli, ["order", "show", str(uuid.uuid4())], env={"DATABASE_URL": "", "REDIS_URL": ""})
    assert result.exit_code == 1
    assert result.output.strip() == "Error: DATABASE_URL is not set (--database-url or env DATABASE_URL)"


def test_a_bad_redis_url_is_named_and_the_row_still_shown(stack: StackHandle, name: str) -> None:
    order_id = str(uuid.uuid4())
    asyncio.run(_insert(stack, "orders", order_id, name))
    result = show(stack, order_id, redis_url="redis+cluster://:secret@127.0.0.1:1/5")
    assert result.exit_code == 1
    assert f"order {order_id}: persisted" in result.output
    assert "flashgate order show: REDIS_URL: a Redis Cluster has database 0 only" in result.output
    assert "secret" not in result.output
