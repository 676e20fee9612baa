"""The order path's shell (gate/orders.py OrderDesk) over doubles of Redis and Kafka (tests/support/fakes.py).

What the end-to-end tests cannot pin down: how many round trips a tick of orders costs, and which
answer each timing of the Kafka delivery and the outbox ack gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from confluent_kafka import KafkaError

from flashgate import names
from flashgate.events import BATCH_SCHEMA_VERSION, decode_batch
from gate.admission import AdmissionClient, AdmitRequest
from gate.answers import Answer
from gate.errors import RedisUnavailable
from gate.handoff import Handoff
from gate.metrics import GateMetrics
from gate.orders import OrderDesk
from gate.outbox import OutboxAcker, OutboxClient, Relay
from gate.ratelimit import RatePolicies
from gate.records import OrderRecords
from gate.scripts import Scripts
from gate.soldout import SoldOutCache
from tests.support.fakes import Command, FakeProducer, FakeRoundTrips, admit_orders, plain_redis, script_args, script_of
from tests.support.poll import until


@dataclass
class Rig:
    desk: OrderDesk
    redis: FakeRoundTrips
    producer: FakeProducer
    metrics: GateMetrics


@asynccontextmanager
async def rig(
    redis: FakeRoundTrips | None = None,
    *,
    budget_s: float = 5.0,
    event_version: int = BATCH_SCHEMA_VERSION,
    window_s: float = 0.0,
) -> AsyncIterator[Rig]:
    """An OrderDesk wired as gate/core.py wires it, on doubles; PostgreSQL absent (no rows).

    `event_version` 2 (the default, as in the gate) produces one message per admission call, 1 one per order.
    """
    redis = redis or FakeRoundTrips()
    producer = FakeProducer()
    metrics = GateMetrics()
    admission = AdmissionClient(redis, Scripts(), idem_ttl_s=60)
    handoff = Handoff(
        {"message.timeout.ms": 1000},
        "orders",
        metrics=metrics,
        producer_factory=lambda _: producer,
        event_version=event_version,
    )
    outbox = OutboxClient(redis, Scripts())
    acker = OutboxAcker(outbox)
    relay = Relay(outbox, handoff, acker, metrics=metrics, stale_ms=60_000, batch=100, discover_s=0)
    desk = OrderDesk(
        admission=admission,
        handoff=handoff,
        acker=acker,
        relay=relay,
        records=OrderRecords(None, timeout_s=1, pool_max=1),
        soldout=SoldOutCache(0.5),
        policies=RatePolicies(redis),
        metrics=metrics,
        budget_s=budget_s,
        window_s=window_s,
    )
    try:
        yield Rig(desk, redis, producer, metrics)
    finally:
        await desk.drain()
        await acker.drain()
        await handoff.close(0)


def place(desk: OrderDesk, sku: str, user: str) -> asyncio.Task[Answer]:
    return asyncio.ensure_future(desk.place(AdmitRequest(sku, user, f"k-{user}", 1)))


def acked_ids(command: Command) -> tuple[str, list[str]]:
    """(outbox key, stream ids) of an outbox_ack.lua call."""
    keys, argv = script_args(command)
    return keys[0], argv


async def test_a_tick_of_orders_costs_one_admit_call_per_sku_and_one_ack_call_per_sku() -> None:
    async with rig() as r:
        answers = [place(r.desk, "a", "u1"), place(r.desk, "b", "u2"), place(r.desk, "a", "u3")]
        await until(lambda: len(r.producer.pending) == 2, timeout_s=5, interval_s=0.001)
        admits = r.redis.scripts(names.ADMIT_SCRIPT)
        assert len(r.redis.ticks) == 1  # both SKUs' scripts in one round trip
        assert [script_args(c)[1][2] for c in admits] == ["a", "b"]  # the SKU argument
        assert [[o[3] for o in admit_orders(c)] for c in admits] == [["u1", "u3"], ["u2"]]  # users, arrival order
        messages = [decode_batch(m.value or b"") for m in r.producer.pending]  # one message per admission call
        assert [(m.sku, [o.user_id for o in m.orders]) for m in messages] == [("a", ["u1", "u3"]), ("b", ["u2"])]

        r.producer.deliver()
        done = await asyncio.gather(*answers)
        assert [(a.status, a.code) for a in done] == [(202, "accepted")] * 3
        acks = r.redis.scripts(names.OUTBOX_ACK_SCRIPT)
        assert len(r.redis.ticks) == 2  # the three deliveries of one poll: one more round trip
        assert sorted(acked_ids(c) for c in acks) == [
            (names.outbox_key("a"), ["1764547200000-0"]),  # u1 and u3: one call, one outbox entry
            (names.outbox_key("b"), ["1764547200000-0"]),
        ]
        assert dict(r.metrics.handoffs) == {"accepted": 3}


async def test_more_orders_than_batch_max_split_into_several_calls_of_the_same_tick() -> None:
    async with rig() as r:
        r.desk._batch_max = 2
        answers = [place(r.desk, "a", f"u{i}") for i in range(5)]
        await until(lambda: len(r.producer.pending) == 3, timeout_s=5, interval_s=0.001)
        assert [len(admit_orders(c)) for c in r.redis.scripts(names.ADMIT_SCRIPT)] == [2, 2, 1]
        assert len(r.redis.ticks) == 1
        r.producer.deliver()
        await asyncio.gather(*answers)


async def test_orders_of_later_ticks_within_the_admission_window_share_one_call() -> None:
    async with rig(window_s=0.05) as r:
        answers = [place(r.desk, "a", "u1")]
        await asyncio.sleep(0.005)  # later ticks, still within the window
        answers += [place(r.desk, "b", "u2"), place(r.desk, "a", "u3")]
        await asyncio.sleep(0.005)
        assert r.redis.scripts(names.ADMIT_SCRIPT) == []  # nothing asked before the window ends
        await until(lambda: len(r.producer.pending) == 2, timeout_s=5, interval_s=0.001)
        admits = r.redis.scripts(names.ADMIT_SCRIPT)
        assert [[o[3] for o in admit_orders(c)] for c in admits] == [["u1", "u3"], ["u2"]]  # arrival order kept
        assert len(r.redis.ticks) == 1
        r.producer.deliver()
        assert [a.code for a in await asyncio.gather(*answers)] == ["accepted"] * 3


async def test_without_a_window_orders_of_later_ticks_go_in_calls_of_their_own() -> None:
    async with rig() as r:
        answers = [place(r.desk, "a", "u1")]
        await until(lambda: len(r.producer.pending) == 1, timeout_s=5, interval_s=0.001)
        answers.append(place(r.desk, "a", "u2"))
        await until(lambda: len(r.producer.pending) == 2, timeout_s=5, interval_s=0.001)
        assert [[o[3] for o in admit_orders(c)] for c in r.redis.scripts(names.ADMIT_SCRIPT)] == [["u1"], ["u2"]]
        r.producer.deliver()
        await asyncio.gather(*answers)


async def test_a_full_call_does_not_wait_for_the_window() -> None:
    async with rig(window_s=10.0) as r:  # a window no test waits for
        r.desk._batch_max = 2
        answers = [place(r.desk, "a", f"u{i}") for i in range(3)]
        await until(lambda: len(r.producer.pending) == 1, timeout_s=5, interval_s=0.001)
        assert [[o[3] for o in admit_orders(c)] for c in r.redis.scripts(names.ADMIT_SCRIPT)] == [["u0", "u1"]]
        r.producer.deliver()
        assert [a.code for a in await asyncio.gather(*answers[:2])] == ["accepted"] * 2
        assert not answers[2].done()  # u2 waits for the window (or for a full call)
        answers[2].cancel()


async def test_an_entry_done_within_the_budget_cancels_its_timer() -> None:
    async with rig(budget_s=0.05) as r:
        passed: list[object] = []
        r.desk._budget_passed = passed.append  # type: ignore[method-assign,assignment]
        answer = place(r.desk, "a", "u1")
        await until(lambda: len(r.producer.pending) == 1, timeout_s=5, interval_s=0.001)
        r.producer.deliver()
        assert (await answer).code == "accepted"
        await asyncio.sleep(0.1)
        assert passed == []  # no wake-up for an answered entry


async def test_no_delivery_within_the_budget_answers_queued() -> None:
    async with rig(budget_s=0.05) as r:
        answer = await place(r.desk, "a", "u1")
        assert (answer.status, answer.code, answer.body["status"]) == (202, "queued", "queued")
        assert r.redis.scripts(names.OUTBOX_ACK_SCRIPT) == []  # nothing delivered, nothing acked


async def test_a_delivery_after_the_budget_still_acks_the_outbox_entry() -> None:
    async with rig(budget_s=0.05) as r:
        assert (await place(r.desk, "a", "u1")).code == "queued"
        r.producer.deliver()
        await until(lambda: len(r.redis.scripts(names.OUTBOX_ACK_SCRIPT)) == 1, timeout_s=5, interval_s=0.001)
        assert acked_ids(r.redis.scripts(names.OUTBOX_ACK_SCRIPT)[0])[1] == ["1764547200000-0"]
        assert dict(r.metrics.handoffs) == {"queued": 1}  # the answer given stands


async def test_a_failed_ack_answers_queued() -> None:
    def ack_refused(command: Command) -> object:
        if script_of(command) == names.OUTBOX_ACK_SCRIPT:
            raise RedisUnavailable()
        return plain_redis(command)

    async with rig(FakeRoundTrips(ack_refused)) as r:
        answer = place(r.desk, "a", "u1")
        await until(lambda: len(r.producer.pending) == 1, timeout_s=5, interval_s=0.001)
        r.producer.deliver()
        assert (await answer).code == "queued"  # the entry is still in the outbox: a replay would say queued


async def test_a_failed_delivery_answers_queued_without_an_ack() -> None:
    async with rig() as r:
        answer = place(r.desk, "a", "u1")
        await until(lambda: len(r.producer.pending) == 1, timeout_s=5, interval_s=0.001)
        r.producer.deliver(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"))
        assert (await answer).code == "queued"
        assert r.redis.scripts(names.OUTBOX_ACK_SCRIPT) == []


async def test_the_orders_of_one_entry_go_in_one_message_and_are_answered_together() -> None:
    async with rig() as r:
        answers = [place(r.desk, "a", "u1"), place(r.desk, "a", "u2")]
        await until(lambda: len(r.producer.pending) == 1, timeout_s=5, interval_s=0.001)
        [message] = r.producer.pending
        assert message.headers is None  # the traces, if any, are inside: one per order
        assert [o.idempotency_key for o in decode_batch(message.value or b"").orders] == ["k-u1", "k-u2"]
        r.producer.deliver()
        assert [(await a).code for a in answers] == ["accepted", "accepted"]
        assert [acked_ids(c)[1] for c in r.redis.scripts(names.OUTBOX_ACK_SCRIPT)] == [["1764547200000-0"]]


async def test_a_failed_message_answers_every_order_of_its_entry_queued() -> None:
    async with rig() as r:
        answers = [place(r.desk, "a", "u1"), place(r.desk, "a", "u2")]
        await until(lambda: len(r.producer.pending) == 1, timeout_s=5, interval_s=0.001)
        r.producer.deliver(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"))
        assert [(await a).code for a in answers] == ["queued", "queued"]
        assert r.redis.scripts(names.OUTBOX_ACK_SCRIPT) == []


async def test_version_1_the_orders_of_one_entry_are_acked_and_answered_together() -> None:
    """One admit.lua call, one outbox entry: it is deleted, and its orders answered, once all are in Kafka."""
    async with rig(event_version=1) as r:
        answers = [place(r.desk, "a", "u1"), place(r.desk, "a", "u2")]
        await until(lambda: len(r.producer.pending) == 2, timeout_s=5, interval_s=0.001)
        r.producer.deliver(first=1)
        await asyncio.sleep(0.01)
        assert r.redis.scripts(names.OUTBOX_ACK_SCRIPT) == []  # u2's order is not in Kafka yet
        assert not any(a.done() for a in answers)
        r.producer.deliver()
        assert [(await a).code for a in answers] == ["accepted", "accepted"]
        assert [acked_ids(c)[1] for c in r.redis.scripts(names.OUTBOX_ACK_SCRIPT)] == [["1764547200000-0"]]


async def test_version_1_one_failed_delivery_keeps_the_whole_entry_and_answers_all_its_orders_queued() -> None:
    """Deleting the entry would lose the failed order; the delivered one stays in it too (a relay resends both)."""
    async with rig(event_version=1) as r:
        answers = [place(r.desk, "a", "u1"), place(r.desk, "a", "u2")]
        await until(lambda: len(r.producer.pending) == 2, timeout_s=5, interval_s=0.001)
        r.producer.deliver(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"), first=1)
        assert [(await a).code for a in answers] == ["queued", "queued"]  # at once: the entry stays
        r.producer.deliver()
        await asyncio.sleep(0.01)
        assert r.redis.scripts(names.OUTBOX_ACK_SCRIPT) == []
        assert dict(r.metrics.handoffs) == {"queued": 2}


async def test_a_producer_that_refuses_answers_queued_at_once() -> None:
    async with rig() as r:
        r.producer.refuse = True
        assert (await place(r.desk, "a", "u1")).code == "queued"


async def test_redis_unavailable_fails_every_order_of_the_call() -> None:
    def down(_command: Command) -> object:
        raise RedisUnavailable()

    async with rig(FakeRoundTrips(down)) as r:
        results = await asyncio.gather(place(r.desk, "a", "u1"), place(r.desk, "a", "u2"), return_exceptions=True)
        assert [type(e) for e in results] == [RedisUnavailable, RedisUnavailable]
        assert r.producer.sent == []
