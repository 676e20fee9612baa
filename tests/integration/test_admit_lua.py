"""admit.lua and the outbox scripts on real Redis: every branch, and stock that never goes negative."""

from __future__ import annotations

import asyncio
import time

from flashgate import names
from gate.admission import AdmissionClient, AdmitRequest, Code
from gate.ids import uuid7
from gate.sales import Sale, put_sale
from tests.gatekit import admission_client
from tests.stackctl import StackHandle


def req(sku: str, user: str = "u1", key: str = "k1", qty: int = 1) -> AdmitRequest:
    return AdmitRequest(sku=sku, user=user, key=key, qty=qty)


async def admit(client: AdmissionClient, r: AdmitRequest) -> tuple[Code, str]:
    a = await client.admit(r, str(uuid7()))
    return a.code, a.order_id


async def test_accept_takes_stock_and_parks_the_order_in_the_outbox(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=5))
        order_id = str(uuid7())
        a = await client.admit(req(name, qty=2), order_id)
        assert (a.code, a.order_id, a.stock_left, a.replayed) == (Code.ACCEPTED, order_id, 3, False)
        assert abs(a.accepted_at_us / 1e6 - time.time()) < 5
        assert await r.get(names.stock_key(name)) == "3"
        assert await r.hget(names.bought_key(name), "u1") == "2"
        entries: list[tuple[str, dict[str, str]]] = await r.xrange(names.outbox_key(name))  # type: ignore[assignment]
        assert [(sid, f["o"], f["q"]) for sid, f in entries] == [(a.stream_id, order_id, "2")]
        pending = await r.xpending(names.outbox_key(name), names.OUTBOX_GROUP)
        assert pending["pending"] == 1
        assert pending["consumers"] == [{"name": names.OUTBOX_GATE_CONSUMER, "pending": 1}]
        assert 0 < await r.ttl(names.idem_key(name, "u1", "k1")) <= 60


async def test_replay_returns_the_stored_answer_and_takes_nothing(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=5))
        first = await client.admit(req(name), str(uuid7()))
        again = await client.admit(req(name), str(uuid7()))
        assert (again.code, again.order_id, again.replayed, again.pending) == (
            Code.ACCEPTED,
            first.order_id,
            True,
            True,
        )
        assert again.accepted_at_us == first.accepted_at_us
        assert await r.get(names.stock_key(name)) == "4"
        assert await client.ack(name, [first.stream_id]) == 1
        after_ack = await client.admit(req(name), str(uuid7()))
        assert (after_ack.code, after_ack.pending) == (Code.ACCEPTED, False)


async def test_same_key_different_body_is_a_mismatch(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=5))
        assert (await admit(client, req(name, qty=1)))[0] is Code.ACCEPTED
        assert (await admit(client, req(name, qty=2)))[0] is Code.MISMATCH
        assert await r.get(names.stock_key(name)) == "4"


async def test_unknown_sku_writes_nothing(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        assert (await admit(client, req(name)))[0] is Code.UNKNOWN_SKU
        assert await r.exists(names.idem_key(name, "u1", "k1"), names.outbox_key(name)) == 0


async def test_sale_not_started_is_not_stored_and_ended_is(stack: StackHandle, name: str) -> None:
    now_ms = int(time.time() * 1000)
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=f"{name}a", units=5, starts_at_ms=now_ms + 60_000))
        a = await client.admit(req(f"{name}a"), str(uuid7()))
        assert a.code is Code.NOT_STARTED
        assert 50_000 < a.wait_ms <= 60_000
        assert await r.exists(names.idem_key(f"{name}a", "u1", "k1")) == 0
        await put_sale(r, Sale(sku=f"{name}b", units=5, starts_at_ms=now_ms - 60_000, ends_at_ms=now_ms - 1))
        assert (await admit(client, req(f"{name}b")))[0] is Code.ENDED
        replay = await client.admit(req(f"{name}b"), str(uuid7()))
        assert (replay.code, replay.replayed) == (Code.ENDED, True)
        assert await r.get(names.stock_key(f"{name}b")) == "5"


async def test_rate_limited_request_consumes_nothing(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=100, rate_per_s=0.5, burst=2))
        assert (await admit(client, req(name, key="a")))[0] is Code.ACCEPTED
        assert (await admit(client, req(name, key="b")))[0] is Code.ACCEPTED
        limited = await client.admit(req(name, key="c"), str(uuid7()))
        assert limited.code is Code.RATE_LIMITED
        assert 0 < limited.wait_ms <= 2000
        assert await r.get(names.stock_key(name)) == "98"
        assert await r.hget(names.bought_key(name), "u1") == "2"
        assert await r.exists(names.idem_key(name, "u1", "c")) == 0
        assert await r.xlen(names.outbox_key(name)) == 2
        # Another user has a bucket of their own.
        assert (await admit(client, req(name, user="u2", key="c")))[0] is Code.ACCEPTED


async def test_per_user_cap(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=100, per_user_limit=2))
        assert (await admit(client, req(name, key="a", qty=2)))[0] is Code.ACCEPTED
        capped = await client.admit(req(name, key="b"), str(uuid7()))
        assert (capped.code, capped.replayed) == (Code.USER_LIMIT, False)
        assert await r.get(names.stock_key(name)) == "98"
        assert (await client.admit(req(name, key="b"), str(uuid7()))).replayed


async def test_sold_out_and_partial_stock(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=1))
        too_many = await client.admit(req(name, key="a", qty=2), str(uuid7()))
        assert (too_many.code, too_many.stock_left) == (Code.SOLD_OUT, 1)
        assert (await admit(client, req(name, key="b")))[0] is Code.ACCEPTED
        gone = await client.admit(req(name, key="c"), str(uuid7()))
        assert (gone.code, gone.stock_left) == (Code.SOLD_OUT, 0)
        assert await r.get(names.stock_key(name)) == "0"


async def test_stock_never_goes_negative_under_concurrency(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=10))
        results = await asyncio.gather(
            *(client.admit(req(name, user=f"u{i}", qty=1 + i % 3), str(uuid7())) for i in range(200))
        )
        taken = sum(1 + i % 3 for i, a in enumerate(results) if a.code is Code.ACCEPTED)
        stock = int(await r.get(names.stock_key(name)) or "-1")
        assert stock >= 0
        assert taken + stock == 10
        assert {a.code for a in results} <= {Code.ACCEPTED, Code.SOLD_OUT}
        assert await r.xlen(names.outbox_key(name)) == sum(a.code is Code.ACCEPTED for a in results)


async def test_noscript_after_script_flush_is_recovered(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=3))
        await r.script_flush()
        assert (await admit(client, req(name)))[0] is Code.ACCEPTED


async def test_missing_outbox_group_is_recreated_with_every_entry_claimable(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=3))
        await admit(client, req(name, key="a"))
        await r.xgroup_destroy(names.outbox_key(name), names.OUTBOX_GROUP)
        assert (await admit(client, req(name, key="b")))[0] is Code.ACCEPTED
        pending = await r.xpending(names.outbox_key(name), names.OUTBOX_GROUP)
        assert pending["pending"] == 2


async def test_ack_is_idempotent(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=3))
        a = await client.admit(req(name), str(uuid7()))
        assert await client.ack(name, [a.stream_id]) == 1
        assert await client.ack(name, [a.stream_id]) == 0
        assert (await r.xpending(names.outbox_key(name), names.OUTBOX_GROUP))["pending"] == 0


async def test_claim_takes_only_stale_entries_once_per_threshold(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=5))
        a = await client.admit(req(name, key="a"), str(uuid7()))
        b = await client.admit(req(name, key="b"), str(uuid7()))
        assert await client.claim(name, min_idle_ms=60_000, cursor="0-0", count=10) == ("0-0", [])
        await client.ack(name, [b.stream_id])
        _cursor, entries = await client.claim(name, min_idle_ms=0, cursor="0-0", count=10)
        assert [(e.order_id, e.user, e.qty, e.key) for e in entries] == [(a.order_id, "u1", 1, "a")]
        # A second relay right after finds nothing: claiming reset the entry's idle time.
        assert (await client.claim(name, min_idle_ms=1000, cursor="0-0", count=10))[1] == []
        assert await client.claim(f"{name}-none", min_idle_ms=0, cursor="0-0", count=10) == ("0-0", [])


async def test_claim_skips_malformed_entries(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=5))
        await r.xadd(names.outbox_key(name), {"o": "only-an-id"})
        await r.xreadgroup(names.OUTBOX_GROUP, names.OUTBOX_GATE_CONSUMER, {names.outbox_key(name): ">"})
        good = await client.admit(req(name), str(uuid7()))
        _, entries = await client.claim(name, min_idle_ms=0, cursor="0-0", count=10)
        assert [e.order_id for e in entries] == [good.order_id]
