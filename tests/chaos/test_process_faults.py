"""flashgate's own processes crash: a worker SIGKILLed mid-batch, a gate SIGKILLed mid-load."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
import redis.asyncio as aioredis

from flashgate import names
from flashgate.outbox import decode_entry
from tests.chaos.checker import Invariants
from tests.chaos.conftest import OpenSale, StartGate, StartWorker
from tests.chaos.load import Load
from tests.support.poll import until
from tests.support.procs import FlashgateProcess
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.chaos


async def rows(stack: StackHandle, sku: str) -> int:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders WHERE sku = $1", sku))
    finally:
        await conn.close()


async def test_6_worker_sigkilled_mid_batch_restarted_exactly_once(
    stack: StackHandle, gates: StartGate, workers: StartWorker, open_sale: OpenSale, invariants: Invariants
) -> None:
    sku = await open_sale(100_000)
    gate = gates()
    # The orders wait in Kafka first, so the worker is killed with a deep backlog in hand.
    load = Load(gate.base_url, sku, buyers=3000, concurrency=32)
    load.start()
    await load.finish()
    assert load.final_statuses() == {202: 3000}, (load.final_statuses(), load.codes())

    # A batch is up to N messages, and a message one admission call's orders (up to 32 here): 10
    # messages a batch keep the 3,000 orders in many batches, so the kill lands mid-stream.
    first = workers(batch_max_rows=10)
    seen = 0

    async def some_persisted() -> bool:
        nonlocal seen
        seen = await rows(stack, sku)
        return seen > 0

    await until(some_persisted, timeout_s=60, what="the first batch persisted")
    first.kill()
    at_kill = await rows(stack, sku)
    assert at_kill < 3000, "the worker finished before it could be killed mid-stream"
    workers(batch_max_rows=10)
    await invariants.check(sku, fault=f"6 worker SIGKILLed at {at_kill} rows of 3000, restarted", loads=[load])


async def test_7_gate_sigkilled_mid_load_relay_publishes_its_outbox(
    stack: StackHandle,
    gates: StartGate,
    relays: Callable[..., FlashgateProcess],
    workers: StartWorker,
    open_sale: OpenSale,
    invariants: Invariants,
) -> None:
    sku = await open_sale(100_000)
    # A long linger keeps ~0.5 s of admitted orders in the producer: the kill strands them.
    gate = gates(workers=2, linger_ms=500)
    workers()
    load = Load(gate.base_url, sku, buyers=3000, concurrency=32, rate_per_s=200, timeout_s=10)
    await load.flowing(200)
    gate.kill()
    await load.stop(abandon=True)  # the gate is gone: in-flight buyers got no answer

    r = aioredis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        entries: list[tuple[str, dict[str, str]]] = await r.xrange(names.outbox_key(sku))  # type: ignore[assignment]
        relayed_ids = {o.order_id for sid, fields in entries for o in decode_entry(sid, _flat(fields))}
        stranded = len(relayed_ids)
        assert stranded > 0, "the kill stranded nothing in the outbox"
        relay = relays()

        async def relayed() -> bool:
            return await r.xlen(names.outbox_key(sku)) == 0

        await until(relayed, timeout_s=60, what="the relay emptied the outbox")
    finally:
        await r.aclose()
    # The buyers the crash left without an answer retry against another gate with the same key:
    # whoever was admitted gets the stored 202 back, not a second order.
    cut_off = sorted({a.buyer for a in load.final.values() if a.status is None})
    assert cut_off, "no buyer was cut off by the kill"
    other = gates()
    retry = Load(other.base_url, sku, buyers=0, only=cut_off, concurrency=16)
    retry.start()
    await retry.finish()
    assert retry.final_statuses() == {202: len(cut_off)}, (retry.final_statuses(), retry.codes())
    replayed = len(retry.accepted_ids() & relayed_ids)
    await invariants.check(
        sku,
        fault=f"7 gate SIGKILLed mid-load: {stranded} orders stranded in the outbox, published by flashgate relay; "
        f"{len(cut_off)} cut-off buyers retried on another gate, {replayed} got their stranded order back",
        loads=[load, retry],
    )
    assert relay.proc.poll() is None, relay.log()[-2000:]
    assert await asyncio.to_thread(relay.terminate) == 0


def _flat(fields: dict[str, str]) -> list[str]:
    return [x for kv in fields.items() for x in kv]
