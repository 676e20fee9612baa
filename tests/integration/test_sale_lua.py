"""sale_snapshot.lua and sale_apply.lua on real Redis: atomic reads, clamps, mode guards."""

from __future__ import annotations

from flashgate import names
from flashgate.orderindex import new_order_id, sku_slot
from flashgate.saleconfig import SaleConfig
from gate.admission import AdmitRequest
from reconcile.model import OrderRef
from reconcile.redis_state import SaleRedis
from tests.support.gatekit import admission_client
from tests.support.stackctl import StackHandle

CONFIG = SaleConfig(units=10, per_user_limit=3)


async def test_rebuild_then_snapshot_sees_everything_admission_wrote(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        sales = SaleRedis(r)
        done = await sales.apply(name, rebuild=True, stock=10, cap=10, config=CONFIG, users={"old": 1})
        assert (done.code, done.stock, done.clamped) == (0, 10, False)
        order_id = str(new_order_id(sku_slot(name)))
        await client.admit(AdmitRequest(name, "amy", "k1", 2), order_id)

        snap = await sales.snapshot(name)
        assert snap.stock == 8
        assert snap.bought == {"old": 1, "amy": 2}
        assert SaleConfig.from_redis(snap.sale) == CONFIG
        assert [(o.order_id, o.user_id, o.idempotency_key, o.qty) for o in snap.outbox] == [(order_id, "amy", "k1", 2)]
        assert abs(snap.outbox[0].accepted_at_us - snap.taken_at_us) < 60_000_000


async def test_adjust_is_relative_and_clamped_to_zero_and_the_cap(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (_, r):
        sales = SaleRedis(r)
        await sales.apply(name, rebuild=True, stock=5, cap=None, config=CONFIG, users={"a": 2})
        up = await sales.apply(name, rebuild=False, stock=+3, cap=None, config=None, users={"a": -2, "b": 1})
        assert (up.stock, up.clamped) == (8, False)
        assert await r.hgetall(names.bought_key(name)) == {"b": "1"}  # a user at 0 is removed
        capped = await sales.apply(name, rebuild=False, stock=+5, cap=9, config=None, users={})
        assert (capped.stock, capped.clamped) == (9, True)
        floored = await sales.apply(name, rebuild=False, stock=-20, cap=None, config=None, users={})
        assert (floored.stock, floored.clamped) == (0, True)
        assert await r.get(names.stock_key(name)) == "0"


async def test_modes_refuse_a_sale_that_changed_shape(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (_, r):
        sales = SaleRedis(r)
        assert (await sales.apply(name, rebuild=False, stock=1, cap=None, config=None, users={})).code == 1
        assert await r.exists(names.stock_key(name)) == 0  # nothing written
        await sales.apply(name, rebuild=True, stock=5, cap=None, config=CONFIG, users={})
        assert (await sales.apply(name, rebuild=True, stock=9, cap=None, config=CONFIG, users={})).code == 2
        assert await r.get(names.stock_key(name)) == "5"


async def test_restored_answers_replay_and_never_overwrite(stack: StackHandle, name: str) -> None:
    """idem_restore.lua: missing answers of live orders come back where admit.lua reads them; others are left."""
    async with admission_client(stack) as (client, r):
        sales = SaleRedis(r)
        await sales.apply(name, rebuild=True, stock=10, cap=10, config=CONFIG, users={})
        kept = await client.admit(AdmitRequest(name, "amy", "k1", 1))  # an answer Redis still has
        seconds, micros = await r.time()
        now_us = int(seconds) * 1_000_000 + int(micros)
        lost = OrderRef(str(new_order_id(sku_slot(name))), "bob", "k1", 2, now_us - 1_000_000)
        expired = OrderRef(str(new_order_id(sku_slot(name))), "cy", "k1", 1, now_us - 61_000_000)
        stale = OrderRef(str(new_order_id(sku_slot(name))), "amy", "k1", 1, now_us)  # same key as `kept`
        assert await sales.restore_answers(name, [lost, expired, stale, lost], ttl_s=60, now_us=now_us) == 1
        replay = await client.admit(AdmitRequest(name, "bob", "k1", 2))
        assert (replay.order_id, replay.replayed, replay.pending) == (lost.order_id, True, False)
        assert (await client.admit(AdmitRequest(name, "amy", "k1", 1))).order_id == kept.order_id
        assert not (await client.admit(AdmitRequest(name, "cy", "k1", 1))).replayed
        assert set(await sales.accepted_answers(name, ttl_s=60)) >= {kept.order_id, lost.order_id}
