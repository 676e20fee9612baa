"""admit.lua and the outbox scripts on real Redis: every branch, and stock that never goes negative."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from flashgate import names, orderindex
from flashgate.fingerprint import StoredAnswer, request_fingerprint
from flashgate.orderindex import new_order_id, new_order_ids, sku_slot
from flashgate.outbox import OutboxOrder, decode_entry
from flashgate.redis_url import redis_now_ms
from gate.admission import AdmissionClient, AdmitRequest, Code
from gate.breaker import Breaker
from gate.errors import RedisUnavailable
from gate.metrics import GateMetrics
from gate.outbox import OutboxAcker, OutboxClient, Relay
from gate.redis_batch import RedisBatcher
from gate.scripts import Scripts
from tests.support.gatekit import admission_client, outbox_client, redis_client
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import StackHandle


def req(sku: str, user: str = "u1", key: str = "k1", qty: int = 1) -> AdmitRequest:
    return AdmitRequest(sku=sku, user=user, key=key, qty=qty)


TTL_S = 60  # the idempotency TTL of tests.support.gatekit.admission_client


async def stored(r: aioredis.Redis, sku: str, user: str = "u1", key: str = "k1") -> tuple[str | None, int]:
    """The stored answer of (user, key) on `sku` and its hash's PTTL (ms), or (None, 0)."""
    now_ms = await redis_now_ms(r)
    for at_ms in (now_ms, now_ms - TTL_S * 1000):
        bucket = names.idem_bucket(sku, TTL_S, at_ms)
        value = await r.hget(bucket, names.idem_field(user, key))
        if value is not None:
            return str(value), int(await r.pttl(bucket))
    return None, 0


async def outboxed(r: aioredis.Redis, sku: str) -> list[list[OutboxOrder]]:
    """The orders of each entry of the SKU's outbox, oldest entry first."""
    entries: list[tuple[str, dict[str, str]]] = await r.xrange(names.outbox_key(sku))  # type: ignore[assignment]
    return [decode_entry(sid, [x for kv in fields.items() for x in kv]) for sid, fields in entries]


async def admit(client: AdmissionClient, r: AdmitRequest) -> tuple[Code, str]:
    a = await client.admit(r)
    return a.code, a.order_id


async def test_accept_takes_stock_and_parks_the_order_in_the_outbox(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=5))
        order_id = str(new_order_id(sku_slot(name)))
        a = await client.admit(req(name, qty=2), order_id)
        assert (a.code, a.order_id, a.stock_left, a.replayed) == (Code.ACCEPTED, order_id, 3, False)
        assert abs(a.accepted_at_us / 1e6 - time.time()) < 5
        assert await r.get(names.stock_key(name)) == "3"
        assert await r.hget(names.bought_key(name), "u1") == "2"
        # What admit.lua wrote reads back with the one definition of each format (flashgate/).
        assert await outboxed(r, name) == [[OutboxOrder(a.stream_id, order_id, "u1", 2, "k1", a.accepted_at_us)]]
        index = await r.hget(orderindex.index_key(uuid.UUID(order_id)), orderindex.call_field(order_id))
        assert index == orderindex.encode_call(name, a.stream_id, [(order_id, "u1", 2)])
        value, pttl_ms = await stored(r, name)
        # The answer's hash expires when its bucket stops being the previous one: TTL to 2 TTL after.
        expires_ms = (a.accepted_at_us // 1000 // (TTL_S * 1000) + 2) * TTL_S * 1000
        assert abs(await redis_now_ms(r) + pttl_ms - expires_ms) < 1000
        assert StoredAnswer.decode(str(value)) == StoredAnswer(
            request_fingerprint(name, 2), 0, order_id, a.accepted_at_us, a.stream_id
        )


async def test_replay_returns_the_stored_answer_and_takes_nothing(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r), outbox_client(stack) as outbox:
        await put_sale(r, Sale(sku=name, units=5))
        first = await client.admit(req(name))
        again = await client.admit(req(name))
        assert (again.code, again.order_id, again.replayed, again.pending) == (
            Code.ACCEPTED,
            first.order_id,
            True,
            True,
        )
        assert again.accepted_at_us == first.accepted_at_us
        assert await r.get(names.stock_key(name)) == "4"
        assert await outbox.ack(name, [first.stream_id]) == 1
        after_ack = await client.admit(req(name))
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
        assert await stored(r, name) == (None, 0)
        assert await r.exists(names.outbox_key(name)) == 0


async def test_sale_not_started_is_not_stored_and_ended_is(stack: StackHandle, name: str) -> None:
    now_ms = int(time.time() * 1000)
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=f"{name}a", units=5, starts_at_ms=now_ms + 60_000))
        a = await client.admit(req(f"{name}a"))
        assert a.code is Code.NOT_STARTED
        assert 50_000 < a.wait_ms <= 60_000
        assert await stored(r, f"{name}a") == (None, 0)
        await put_sale(r, Sale(sku=f"{name}b", units=5, starts_at_ms=now_ms - 60_000, ends_at_ms=now_ms - 1))
        assert (await admit(client, req(f"{name}b")))[0] is Code.ENDED
        replay = await client.admit(req(f"{name}b"))
        assert (replay.code, replay.replayed) == (Code.ENDED, True)
        assert await r.get(names.stock_key(f"{name}b")) == "5"


async def test_rate_limited_request_consumes_nothing(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=100, rate_per_s=0.5, burst=2))
        a, b = await client.admit(req(name, key="a")), await client.admit(req(name, key="b"))
        assert (a.code, b.code) == (Code.ACCEPTED, Code.ACCEPTED)
        # What is left of the burst after each, and when all of it is back (one interval is 2 s).
        assert (a.allowance, b.allowance) == ("1,2,0.5,2", "0,4,0.5,2")
        limited = await client.admit(req(name, key="c"))
        assert limited.code is Code.RATE_LIMITED
        assert 0 < limited.wait_ms <= 2000
        assert await r.get(names.stock_key(name)) == "98"
        assert await r.hget(names.bought_key(name), "u1") == "2"
        assert await stored(r, name, key="c") == (None, 0)
        assert await r.xlen(names.outbox_key(name)) == 2
        # Another user has a bucket of their own; a sale without a rate limit returns no allowance.
        assert (await client.admit(req(name, user="u2", key="c"))).allowance == "1,2,0.5,2"
        await put_sale(r, Sale(sku=f"{name}-open", units=1))
        assert (await client.admit(req(f"{name}-open"))).allowance == ""


async def test_per_user_cap(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=100, per_user_limit=2))
        assert (await admit(client, req(name, key="a", qty=2)))[0] is Code.ACCEPTED
        capped = await client.admit(req(name, key="b"))
        assert (capped.code, capped.replayed) == (Code.USER_LIMIT, False)
        refusal, _ = await stored(r, name, key="b")
        assert StoredAnswer.decode(str(refusal)) == StoredAnswer(request_fingerprint(name, 1), 7)
        assert await r.get(names.stock_key(name)) == "98"
        assert (await client.admit(req(name, key="b"))).replayed


async def test_sold_out_and_partial_stock(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=1))
        too_many = await client.admit(req(name, key="a", qty=2))
        assert (too_many.code, too_many.stock_left) == (Code.SOLD_OUT, 1)
        assert (await admit(client, req(name, key="b")))[0] is Code.ACCEPTED
        gone = await client.admit(req(name, key="c"))
        assert (gone.code, gone.stock_left) == (Code.SOLD_OUT, 0)
        assert await r.get(names.stock_key(name)) == "0"


async def test_stock_never_goes_negative_under_concurrency(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=10))
        results = await asyncio.gather(*(client.admit(req(name, user=f"u{i}", qty=1 + i % 3)) for i in range(200)))
        taken = sum(1 + i % 3 for i, a in enumerate(results) if a.code is Code.ACCEPTED)
        stock = int(await r.get(names.stock_key(name)) or "-1")
        assert stock >= 0
        assert taken + stock == 10
        assert {a.code for a in results} <= {Code.ACCEPTED, Code.SOLD_OUT}
        in_outbox = [o.order_id for e in await outboxed(r, name) for o in e]
        assert sorted(in_outbox) == sorted(a.order_id for a in results if a.code is Code.ACCEPTED)


async def test_noscript_after_script_flush_is_recovered(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=3))
        await r.script_flush()
        assert (await admit(client, req(name)))[0] is Code.ACCEPTED


async def test_ack_is_idempotent(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r), outbox_client(stack) as outbox:
        await put_sale(r, Sale(sku=name, units=3))
        a = await client.admit(req(name))
        assert await outbox.ack(name, [a.stream_id]) == 1
        assert await outbox.ack(name, [a.stream_id]) == 0
        assert await r.xlen(names.outbox_key(name)) == 0


async def test_claim_gives_stale_entries_to_the_lease_holder_only(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r), outbox_client(stack) as outbox:
        await put_sale(r, Sale(sku=name, units=5))
        a = await client.admit(req(name, key="a"))
        b = await client.admit(req(name, key="b"))

        async def claim(relay: str, min_age_ms: int, count: int = 10, cursor: str = "0-0") -> tuple[str, list[str]]:
            got = await outbox.claim(name, relay=relay, min_age_ms=min_age_ms, lease_ms=60_000, cursor=cursor,
                                     count=count)  # fmt: skip
            return got[0], [o.order_id for e in got[1] for o in e]

        assert await claim("r1", 60_000) == ("0-0", [])  # nothing that old; r1 holds the lease now
        await outbox.ack(name, [b.stream_id])
        assert await claim("r1", 0) == ("0-0", [a.order_id])
        assert await claim("r2", 0) == ("0-0", [])  # another relay waits for the lease
        _cursor, entries = await outbox.claim(name, relay="r1", min_age_ms=0, lease_ms=60_000, cursor="0-0", count=10)
        assert [[(o.order_id, o.user, o.qty, o.key) for o in e] for e in entries] == [[(a.order_id, "u1", 1, "a")]]
        # Paging: a full page returns a cursor, the next page starts after it.
        c = await client.admit(req(name, key="c"))
        first = await claim("r1", 0, count=1)
        assert first == (a.stream_id, [a.order_id])
        assert await claim("r1", 0, count=1, cursor=first[0]) == (c.stream_id, [c.order_id])
        await r.delete(names.relay_lease_key(name))  # the holder died and its lease lapsed
        assert (await claim("r2", 0))[1] == [a.order_id, c.order_id]
        assert await outbox.claim(f"{name}-none", relay="r1", min_age_ms=0, lease_ms=1000, cursor="0-0",
                                  count=10) == ("0-0", [])  # fmt: skip


async def test_a_trace_context_rides_in_the_outbox_entry_of_its_order_only(stack: StackHandle, name: str) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with admission_client(stack) as (client, r), outbox_client(stack) as outbox:
        await put_sale(r, Sale(sku=name, units=5))
        slot = sku_slot(name)
        ids = [str(o) for o in new_order_ids(slot, 2)]
        traced, plain = await client.admit_batch(
            name, [AdmitRequest(name, "u1", "a", 1, traceparent), req(name, key="b")], ids
        )
        [entry] = await outboxed(r, name)
        assert [(o.order_id, o.trace) for o in entry] == [(traced.order_id, traceparent), (plain.order_id, "")]
        _, claimed = await outbox.claim(name, relay="r", min_age_ms=0, lease_ms=1000, cursor="0-0", count=10)
        assert claimed == [entry]


async def test_claim_skips_malformed_entries(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r), outbox_client(stack) as outbox:
        await put_sale(r, Sale(sku=name, units=5))
        await r.xadd(names.outbox_key(name), {"o": "only-an-id"})
        good = await client.admit(req(name))
        _, entries = await outbox.claim(name, relay="r", min_age_ms=0, lease_ms=1000, cursor="0-0", count=10)
        assert [[o.order_id for o in e] for e in entries] == [[good.order_id]]


async def test_an_entry_of_the_earlier_layout_is_claimed_as_one_order(stack: StackHandle, name: str) -> None:
    """A gate of the release before one entry per call wrote one order per entry: relays still republish it."""
    async with admission_client(stack) as (_client, r), outbox_client(stack) as outbox:
        order_id = str(new_order_id(sku_slot(name)))
        sid = await r.xadd(names.outbox_key(name), {"o": order_id, "u": "u1", "q": "2", "k": "k1", "t": "17"})
        _, entries = await outbox.claim(name, relay="r", min_age_ms=0, lease_ms=1000, cursor="0-0", count=10)
        assert entries == [[OutboxOrder(str(sid), order_id, "u1", 2, "k1", 17)]]


async def test_one_call_judges_a_batch_in_order_as_separate_calls_would(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=4, per_user_limit=2))
        reqs = [
            req(name, user="a", key="1"),  # accepted
            req(name, user="a", key="1"),  # the same key again, in the same call: replay, still pending
            req(name, user="a", key="1", qty=2),  # same key, other body: mismatch
            req(name, user="a", key="2", qty=2),  # a's cap: 1 + 2 > 2
            req(name, user="b", key="1", qty=2),  # accepted: 1 unit left
            req(name, user="c", key="1", qty=2),  # fewer left than asked
            req(name, user="c", key="2"),  # takes the last unit
            req(name, user="d", key="1"),  # sold out
        ]
        slot = sku_slot(name)
        ids = [str(o) for o in new_order_ids(slot, len(reqs))]
        got = await client.admit_batch(name, reqs, ids)
        assert [(a.code, a.replayed) for a in got] == [
            (Code.ACCEPTED, False),
            (Code.ACCEPTED, True),
            (Code.MISMATCH, False),
            (Code.USER_LIMIT, False),
            (Code.ACCEPTED, False),
            (Code.SOLD_OUT, False),
            (Code.ACCEPTED, False),
            (Code.SOLD_OUT, False),
        ]
        assert (got[1].order_id, got[1].pending, got[1].accepted_at_us) == (ids[0], True, got[0].accepted_at_us)
        assert [got[i].stock_left for i in (0, 4, 5, 6, 7)] == [3, 1, 1, 0, 0]
        assert got[7].buyers == 3
        assert len({got[i].accepted_at_us for i in (0, 4, 6)}) == 1  # one Redis TIME per call
        assert await r.get(names.stock_key(name)) == "0"
        assert await r.hgetall(names.bought_key(name)) == {"a": "1", "b": "2", "c": "1"}
        # One outbox entry for the call's admitted orders; their answers and index entries name it.
        [entry] = await outboxed(r, name)
        assert [(o.order_id, o.user, o.qty) for o in entry] == [(ids[0], "a", 1), (ids[4], "b", 2), (ids[6], "c", 1)]
        assert {o.stream_id for o in entry} == {got[i].stream_id for i in (0, 4, 6)}
        value, _ = await stored(r, name, user="b", key="1")
        assert StoredAnswer.decode(str(value)).stream_id == entry[0].stream_id
        # One index entry for the call too: its admitted orders by position, none of the others.
        oid = uuid.UUID(ids[6])
        index = await r.hgetall(orderindex.index_key(oid))
        assert index == {
            orderindex.call_field(ids[0]): orderindex.encode_call(
                name, entry[0].stream_id, [(ids[0], "a", 1), (ids[4], "b", 2), (ids[6], "c", 1)]
            )
        }
        values = await r.hmget(orderindex.index_key(oid), orderindex.index_fields(oid))
        assert orderindex.lookup(oid, values) == orderindex.IndexEntry(name, "c", 1, entry[0].stream_id)
        assert await client.order(uuid.UUID(ids[5])) is None  # an id of the call whose order was refused
        # Stored answers: each key replays its own outcome later.
        again = await client.admit_batch(name, [reqs[3], reqs[5]], [str(o) for o in new_order_ids(slot, 2)])
        assert [(a.code, a.replayed) for a in again] == [(Code.USER_LIMIT, True), (Code.SOLD_OUT, True)]


async def test_the_order_index_lives_in_the_skus_slot(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r), outbox_client(stack) as outbox:
        await put_sale(r, Sale(sku=name, units=3))
        a = await client.admit(req(name, user="u:1"))
        oid = uuid.UUID(a.order_id)
        assert orderindex.key_slot(orderindex.index_key(oid)) == sku_slot(name)
        indexed = await client.order(oid)
        assert indexed is not None
        assert (indexed.sku, indexed.user, indexed.qty, indexed.pending) == (name, "u:1", 1, True)
        assert 0 < await r.ttl(orderindex.index_key(oid)) <= orderindex.index_ttl_s(60)
        await outbox.ack(name, [a.stream_id])
        indexed = await client.order(oid)
        assert indexed is not None
        assert not indexed.pending
        assert await client.order(new_order_id(sku_slot(name))) is None


async def test_an_order_indexed_by_an_earlier_gate_is_still_found(stack: StackHandle, name: str) -> None:
    """Gates before one index entry per call wrote one field per order, keyed by the whole id."""
    async with admission_client(stack) as (client, r), outbox_client(stack) as outbox:
        await put_sale(r, Sale(sku=name, units=3))
        a = await client.admit(req(name))  # a live outbox entry for the old-form order to point at
        await outbox.ack(name, [a.stream_id])
        oid = new_order_id(sku_slot(name))
        old = orderindex.IndexEntry(name, "u:old", 2, a.stream_id)
        await r.hset(orderindex.index_key(oid), str(oid), old.encode())
        indexed = await client.order(oid)
        assert indexed is not None
        assert (indexed.sku, indexed.user, indexed.qty, indexed.pending) == (name, "u:old", 2, False)


async def test_order_ids_of_two_calls_are_refused_before_redis(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=3))
        two_calls = [str(new_order_id(sku_slot(name))) for _ in range(2)]
        with pytest.raises(ValueError, match="one call"):
            await client.admit_batch(name, [req(name, key="1"), req(name, key="2")], two_calls)
        assert await r.get(names.stock_key(name)) == "3"


async def test_order_ids_of_another_slot_are_refused_before_redis(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=3))
        wrong = str(new_order_id((sku_slot(name) + 1) % orderindex.SLOTS))
        with pytest.raises(ValueError, match="slot"):
            await client.admit(req(name), wrong)
        assert await r.get(names.stock_key(name)) == "3"


async def test_an_out_of_memory_redis_refuses_the_whole_call_before_it_writes(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=3))
        used = int((await r.info("memory"))["used_memory"])
        await r.config_set("maxmemory", used // 2)
        try:
            with pytest.raises(RedisUnavailable) as refused:
                await client.admit_batch(name, [req(name, key="1"), req(name, key="2")],
                                         [str(o) for o in new_order_ids(sku_slot(name), 2)])  # fmt: skip
            assert isinstance(refused.value.__cause__, OutOfMemoryError)
        finally:
            await r.config_set("maxmemory", 0)
        assert await r.get(names.stock_key(name)) == "3"
        assert await r.xlen(names.outbox_key(name)) == 0
        assert await stored(r, name, key="1") == (None, 0)


async def test_one_call_rate_limits_a_user_as_separate_calls_would(stack: StackHandle, name: str) -> None:
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=100, rate_per_s=0.5, burst=2))
        reqs = [req(name, key=k) for k in "abc"] + [req(name, user="u2", key="a")]
        got = await client.admit_batch(name, reqs, [str(o) for o in new_order_ids(sku_slot(name), len(reqs))])
        assert [a.code for a in got] == [Code.ACCEPTED, Code.ACCEPTED, Code.RATE_LIMITED, Code.ACCEPTED]
        assert 0 < got[2].wait_ms <= 2000
        # The next call sees the state this one wrote.
        assert (await admit(client, req(name, key="d")))[0] is Code.RATE_LIMITED


def rate_bucket(sku: str, width_ms: int, now_ms: int) -> str:
    """admit.lua's GCRA hash for a bucket width (its header) at `now_ms`."""
    return f"{names.rate_prefix(sku)}:{width_ms}:{now_ms // width_ms}"


async def early_in_buckets(r: aioredis.Redis, *widths_ms: int, margin_ms: int = 1500) -> int:
    """Redis time (ms) at least `margin_ms` before the end of its bucket of every width (waits if need be)."""
    while True:
        now_ms = await redis_now_ms(r)
        left = min(w - now_ms % w for w in widths_ms)
        if left >= margin_ms:
            return now_ms
        await asyncio.sleep(left / 1000 + 0.01)


async def test_the_previous_bucket_still_counts(stack: StackHandle, name: str) -> None:
    """Answers and GCRA states written in the bucket before the current one are still read."""
    async with admission_client(stack) as (client, r):
        await put_sale(r, Sale(sku=name, units=100, rate_per_s=0.5, burst=2))  # interval 2 s: width 4096 ms
        now_ms = await early_in_buckets(r, TTL_S * 1000, 4096)
        earlier = StoredAnswer(request_fingerprint(name, 1), 8)
        await r.hset(names.idem_bucket(name, TTL_S, now_ms - TTL_S * 1000), names.idem_field("u1", "old"),
                     earlier.encode())  # fmt: skip
        replay = await client.admit(req(name, key="old"))
        assert (replay.code, replay.replayed) == (Code.SOLD_OUT, True)
        # A state 10 s ahead of now: far past the burst, so u2 must wait.
        await r.hset(rate_bucket(name, 4096, now_ms - 4096), "u2", str((now_ms + 10_000) * 1000))
        limited = await client.admit(req(name, user="u2"))
        assert limited.code is Code.RATE_LIMITED
        assert 5_000 < limited.wait_ms <= 10_000
        # Two buckets back is never read (a state written then is in the past by now).
        await r.hset(rate_bucket(name, 4096, now_ms - 2 * 4096), "u3", str((now_ms + 10_000) * 1000))
        assert (await admit(client, req(name, user="u3")))[0] is Code.ACCEPTED
        assert await r.get(names.stock_key(name)) == "99"


async def test_relay_claims_only_from_outboxes_that_hold_entries(stack: StackHandle, name: str) -> None:
    """A registry of many SKUs costs an idle relay one round trip of XLENs, not one claim per SKU."""
    round_trips: list[int] = []  # commands per round trip
    r = redis_client(stack)
    batcher = RedisBatcher(r, Breaker(failures_to_open=1000, cooldown_s=0.1), timeout_s=5,
                           observe=lambda commands, _s: round_trips.append(commands))  # fmt: skip
    client = AdmissionClient(batcher, Scripts(), idem_ttl_s=60)
    outbox = OutboxClient(batcher, Scripts())
    try:
        idle = [f"{name}-idle-{i}" for i in range(40)]
        for sku in (*idle, name):
            await put_sale(r, Sale(sku=sku, units=5))
        stranded = await client.admit(req(name))  # its gate "died": only the relay can publish it
        claimed: list[str] = []
        real_claim = outbox.claim

        async def spy(sku: str, **kw: Any) -> Any:
            claimed.append(sku)
            return await real_claim(sku, **kw)

        outbox.claim = spy  # type: ignore[method-assign]
        sent: list[str] = []
        handoff = SimpleNamespace(
            batched=False, in_flight=lambda _oid: False, send=lambda event, _cb, **_: sent.append(str(event.order_id))
        )
        relay = Relay(outbox, handoff, OutboxAcker(outbox), metrics=GateMetrics(),
                      stale_ms=1, batch=10, discover_s=0)  # fmt: skip
        relay.skus.update((*idle, name))
        await asyncio.sleep(0.01)  # the entry is stale now
        round_trips.clear()
        assert await relay.tick() == 1
        assert claimed == [name]
        assert sent == [stranded.order_id]
        assert round_trips == [41, 1]  # every XLEN in one round trip, then the one claim
        assert await outbox.lengths([idle[0], name]) == [0, 1]
    finally:
        await batcher.close()
        await r.aclose()
