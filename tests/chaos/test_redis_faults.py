"""Redis faults under load, through a served gate and a worker: killed (AOF), full (maxmemory), wiped."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from tests.chaos.checker import Invariants, cli, wait_drained
from tests.chaos.conftest import OpenSale, StartGate, StartWorker
from tests.chaos.faults import redis_full, service_down, wipe_redis
from tests.chaos.load import Attempt, Load
from tests.support.poll import until
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.chaos


async def test_3_redis_killed_503_then_aof_restart_sells_out_exactly(
    stack: StackHandle, gates: StartGate, workers: StartWorker, open_sale: OpenSale, invariants: Invariants
) -> None:
    fault = service_down(stack, "redis", how="kill")
    sku, load, refused = await _sells_out_through(fault, "Redis is down", gates, workers, open_sale)
    slowest = max(a.latency_s for a in refused)
    await invariants.check(
        sku, fault=f"3 redis SIGKILLed, {len(refused)} x 503 (slowest {slowest * 1000:.0f} ms), AOF restart",
        loads=[load],
    )  # fmt: skip


async def test_11_redis_out_of_memory_answers_503_and_sells_out_exactly(
    stack: StackHandle, gates: StartGate, workers: StartWorker, open_sale: OpenSale, invariants: Invariants
) -> None:
    fault = redis_full(stack)
    sku, load, refused = await _sells_out_through(fault, "Redis is out of memory", gates, workers, open_sale)
    await invariants.check(sku, fault=f"11 redis maxmemory reached, {len(refused)} x 503, then raised", loads=[load])


async def _sells_out_through(
    fault: AbstractAsyncContextManager[object], what: str, gates: StartGate, workers: StartWorker, open_sale: OpenSale
) -> tuple[str, Load, list[Attempt]]:
    """A sale of 300 units to 1,500 retrying buyers, with `fault` in force until 50 answers were 503.

    Returns the SKU, the load and its 503 attempts, once every buyer has a final answer: 503s only
    (never another 5xx, never a hang), and in the end exactly the stock sold, to buyers who saw 202.
    """
    # Enough buyers at 100/s that some are still buying during the fault: on a loaded box the
    # kill command alone can take seconds, and 600 buyers could all be answered by then.
    units, buyers = 300, 1500
    sku = await open_sale(units)
    # The gate's Redis timeout is 250 ms: an attempt unanswered after 3 s counts as a hang.
    gate = gates()
    workers()
    load = Load(gate.base_url, sku, buyers=buyers, concurrency=32, rate_per_s=100, timeout_s=3)
    await load.flowing(60)
    async with fault:
        mark = load.sent
        await until(
            lambda: sum(a.status == 503 for a in load.attempts[mark:]) >= 50,
            what=f"503s while {what}",
            state=lambda: f"attempts since the fault: {load.statuses_since(mark)}, buyers done {len(load.final)}",
        )
    await load.finish()

    refused = [a for a in load.attempts if a.status == 503]
    assert {a.code for a in refused} <= {"redis_unavailable", "overloaded"}, {a.code for a in refused}
    assert not [a for a in load.attempts if a.status is not None and a.status >= 500 and a.status != 503]
    assert not load.unanswered(), load.unanswered()[:3]
    # Every buyer retried until a final answer: exactly the stock was sold, to buyers who saw 202.
    assert load.final_statuses() == {202: units, 409: buyers - units}, load.final_statuses()
    assert {a.code for a in load.final.values() if a.status == 409} == {"sold_out"}
    return sku, load, refused


async def test_4_redis_wiped_then_reconcile_apply_restores_stock_and_answers(
    stack: StackHandle, gates: StartGate, workers: StartWorker, open_sale: OpenSale, invariants: Invariants
) -> None:
    units = 300
    sku = await open_sale(units)
    gate = gates()
    workers()
    first = Load(gate.base_url, sku, buyers=150, concurrency=16, user_prefix="a")
    first.start()
    await first.finish()
    assert first.final_statuses() == {202: 150}, first.final_statuses()
    await wait_drained(stack, sku)

    await wipe_redis(stack)
    # Redis knows nothing now: the gate must not sell what it cannot count.
    async with httpx.AsyncClient(base_url=gate.base_url, timeout=5) as client:
        statuses: list[int] = []

        async def answered() -> bool:  # the breaker may still be open for a moment after the restart
            res = await client.post(
                "/v1/orders", json={"sku": sku, "qty": 1}, headers={"X-User-Id": "probe", "Idempotency-Key": "p"}
            )
            statuses.append(res.status_code)
            return res.status_code != 503

        await until(answered, timeout_s=30, what="an answer after the restart")
        assert statuses[-1] == 404, statuses

    out = await cli(stack, "reconcile", "--sku", sku, "--apply", ok=(0, 1))
    # Buyers of the first phase retrying now get their stored 202 back, not a second order.
    replay = Load(gate.base_url, sku, buyers=150, concurrency=16, user_prefix="a")
    replay.start()
    await replay.finish()
    assert replay.accepted_ids() == first.accepted_ids(), out
    second = Load(gate.base_url, sku, buyers=300, concurrency=32, user_prefix="b")
    second.start()
    await second.finish()
    assert second.final_statuses() == {202: units - 150, 409: 150}, second.final_statuses()
    await invariants.check(
        sku, fault="4 redis wiped (AOF deleted), reconcile --apply, replays and sell-out", loads=[first, replay, second]
    )
