"""The reconciler against the whole pipeline: data loss, manual drift, backlog, repair while selling."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from flashgate import names
from gate.admission import AdmitRequest
from tests.support.gatekit import admission_client, gate_settings, order_headers, redis_client, running_gate
from tests.support.oncall import buy, oncall, reconcile_json, verify
from tests.support.pipeline import create_topics, start_worker, wait_persisted
from tests.support.stackctl import StackHandle


def open_sale(stack: StackHandle, sku: str, units: int, *extra: str) -> None:
    done = oncall(stack, "sale", "create", "--sku", sku, "--name", sku, "--stock", str(units), *extra)
    assert done.returncode == 0, done.stderr


async def redis_state(stack: StackHandle, sku: str) -> tuple[int, dict[str, str]]:
    r = redis_client(stack)
    try:
        stock = int(await r.get(names.stock_key(sku)) or -1)
        bought: dict[str, str] = await r.hgetall(names.bought_key(sku))  # type: ignore[assignment]
        return stock, bought
    finally:
        await r.aclose()


async def test_redis_flushed_mid_sale_is_rebuilt_and_selling_resumes(
    stack: StackHandle, name: str, tmp_path: Path
) -> None:
    topics = create_topics(stack, name)
    open_sale(stack, name, 40, "--per-user-limit", "3")
    accepted: list[str] = []
    async with running_gate(gate_settings(stack, topics.orders, delivery_budget_ms=9000)) as (client, _):
        worker = start_worker(stack, topics, tmp_path / "w1.log", batch_max_wait_ms=20)
        try:
            for i in range(20):  # ten buyers, two units each, all recorded
                res = await buy(client, name, f"u{i % 10}", f"k{i}", order_headers)
                assert res.status_code == 202, res.text
                accepted.append(res.json()["order_id"])
            assert len((await wait_persisted(stack.database_url, name, 20)).order_ids) == 20
        finally:
            worker.terminate()
            worker.close()
        for i in range(20, 25):  # five more, left in Kafka while the worker is down
            res = await buy(client, name, f"u{i % 5}", f"k{i}", order_headers)
            assert res.status_code == 202, res.text
            accepted.append(res.json()["order_id"])

        r = redis_client(stack)
        await r.flushall()
        await r.aclose()
        code, before = await reconcile_json(stack, topics, "--sku", name)
        assert code == 1
        assert before["skus"][0]["redis_has_sale"] is False
        code, after = await reconcile_json(stack, topics, "--sku", name, "--apply")
        assert code == 0, after
        assert after["skus"][0]["repair"]["action"] == "rebuilt"
        stock, bought = await redis_state(stack, name)
        assert stock == 40 - 25
        assert bought == {**{f"u{i}": "3" for i in range(5)}, **{f"u{i}": "2" for i in range(5, 10)}}
        assert (await reconcile_json(stack, topics, "--sku", name))[0] == 0

        replay = await buy(client, name, "u0", "k0", order_headers)  # answer restored: replay, no new order
        assert (replay.status_code, replay.json()["order_id"], replay.headers["idempotent-replayed"]) == (
            202, accepted[0], "true"
        )  # fmt: skip
        assert (await buy(client, name, "u0", "k-more", order_headers)).json()["code"] == "user_limit"
        fresh = [await buy(client, name, f"new{i}", "k", order_headers) for i in range(18)]
        assert [r.status_code for r in fresh].count(202) == 15
        assert {r.json().get("code") for r in fresh if r.status_code != 202} == {"sold_out"}
        accepted += [r.json()["order_id"] for r in fresh if r.status_code == 202]

    worker = start_worker(stack, topics, tmp_path / "w2.log", batch_max_wait_ms=20)
    try:
        assert len((await wait_persisted(stack.database_url, name, 40)).order_ids) == 40
    finally:
        worker.terminate()
        worker.close()
    checked = await verify(stack, topics, name, accepted)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert " ok units_on_sale=40 units_sold=40 redis_stock=0 rows=40" in checked.stdout


async def test_manual_drift_is_detected_and_repaired(stack: StackHandle, name: str, tmp_path: Path) -> None:
    topics = create_topics(stack, name)
    open_sale(stack, name, 20, "--per-user-limit", "5")
    async with running_gate(gate_settings(stack, topics.orders, delivery_budget_ms=9000)) as (client, _):
        for i in range(5):
            assert (await buy(client, name, "alice", f"k{i}", order_headers)).status_code == 202
    r = redis_client(stack)
    try:
        await r.set(names.stock_key(name), 18)  # someone "fixed" it by hand
        await r.hset(names.bought_key(name), "mallory", 1)
        await r.hset(names.sale_key(name), "per_user_limit", 50)
    finally:
        await r.aclose()

    code, found = await reconcile_json(stack, topics, "--sku", name)
    sku = found["skus"][0]
    assert code == 1
    assert (sku["expected_stock"], sku["redis_stock"], sku["drift"], sku["in_flight"]) == (15, 18, 3, 5)
    assert sku["buyers"] == {"mallory": {"redis": 1, "expected": 0}}
    assert [c["field"] for c in sku["config"]] == ["per_user_limit"]
    text = oncall(stack, "reconcile", "--sku", name, topics=topics)
    assert text.returncode == 1
    assert "+3" in text.stdout
    assert "config per_user_limit is '50' in Redis, '5' in PostgreSQL" in text.stdout

    code, repaired = await reconcile_json(stack, topics, "--sku", name, "--apply")
    assert code == 0
    assert repaired["skus"][0]["repair"]["stock_after"] == 15
    stock, bought = await redis_state(stack, name)
    assert (stock, bought) == (15, {"alice": "5"})
    assert (await reconcile_json(stack, topics, "--sku", name))[0] == 0
    # The group's options reach `verify`: it checks this SKU only, however the command is typed.
    for args in (
        ("--sku", name, "verify", "--json"),
        ("--sku", name, "--json", "verify"),
        ("verify", "--sku", name, "--json"),
    ):
        done = oncall(stack, "reconcile", *args, topics=topics)
        assert [v["sku"] for v in json.loads(done.stdout)["skus"]] == [name], (args, done.stderr)
    refused = oncall(stack, "reconcile", "--apply", "verify", topics=topics)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert "--apply repairs; it does not go with `verify`" in refused.stderr


async def test_a_backlog_in_kafka_and_the_outbox_is_not_drift(stack: StackHandle, name: str) -> None:
    topics = create_topics(stack, name)
    open_sale(stack, name, 30)
    async with running_gate(gate_settings(stack, topics.orders, delivery_budget_ms=9000)) as (client, _):
        # No worker: all twelve wait in Kafka. Sent together, they are one admission call: one message.
        bought = await asyncio.gather(*(buy(client, name, f"u{i}", "k", order_headers) for i in range(12)))
        assert [b.status_code for b in bought] == [202] * 12
    async with admission_client(stack) as (admission, _):  # admitted, never handed to Kafka: in the outbox
        parked = await admission.admit(AdmitRequest(name, "outboxed", "k", 2))
        assert parked.stock_left == 16

    code, found = await reconcile_json(stack, topics, "--sku", name)
    sku = found["skus"][0]
    assert code == 0, sku
    assert (sku["units_sold"], sku["in_flight"], sku["outbox"], sku["expected_stock"], sku["redis_stock"]) == (
        0, 12, 2, 16, 16
    )  # fmt: skip
    unknown = oncall(stack, "reconcile", "--sku", "no-such-sku", topics=topics)
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "reconcile: unknown SKU(s): no-such-sku")


async def test_apply_while_orders_flow_keeps_i1_and_restores_i4(stack: StackHandle, name: str, tmp_path: Path) -> None:
    topics = create_topics(stack, name)
    units = 200
    open_sale(stack, name, units)
    r = redis_client(stack)
    await r.decrby(names.stock_key(name), 7)  # lost units: the repair must give them back mid-sale
    await r.aclose()
    worker = start_worker(stack, topics, tmp_path / "w.log", batch_max_wait_ms=20)
    accepted: list[str] = []
    try:
        async with running_gate(gate_settings(stack, topics.orders, delivery_budget_ms=9000)) as (client, _):

            async def buyer(i: int) -> None:
                res = await buy(client, name, f"u{i}", "k", order_headers)
                if res.status_code == 202:
                    accepted.append(res.json()["order_id"])

            async def repairs() -> list[int]:
                return [(await reconcile_json(stack, topics, "--sku", name, "--apply"))[0] for _ in range(3)]

            repairing = asyncio.create_task(repairs())
            await asyncio.gather(*(buyer(i) for i in range(300)))
            assert set(await repairing) == {0}
        state = await wait_persisted(stack.database_url, name, len(accepted))
        assert state.units_sold == len(accepted) <= units  # I1
    finally:
        worker.terminate()
        worker.close()
    # Sold out, or the last repair gave the lost units back after the buyers were done.
    assert (await reconcile_json(stack, topics, "--sku", name))[0] == 0
    checked = await verify(stack, topics, name, accepted)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # I2–I4 once drained
