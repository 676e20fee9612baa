"""The worker loop with batches overlapping in PostgreSQL: offsets still commit in fetch order.

Kafka and PostgreSQL are doubles here (tests/support/fakes.py): the consumer replays scripted
batches and records its commits, and each batch's transaction is a scripted coroutine.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.fakes import FakeConsumer, ScriptedWriter, batch, run_until
from tests.support.poll import until
from worker.batch import batches_in_flight


async def test_a_later_batch_commits_only_after_the_earlier_one() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(0, 2)])
    second_done = asyncio.Event()

    async def script(n: int) -> None:
        if n == 1:
            await second_done.wait()  # batch 1 is still in its transaction when batch 2 is done
        else:
            second_done.set()

    writer = ScriptedWriter(consumer, script)
    await run_until(writer, lambda: len(consumer.commits) == 2)
    assert writer.most_running == 2
    assert consumer.commits == [{0: 2}, {0: 4}]


async def test_an_abandoned_batch_keeps_the_next_one_uncommitted() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(1, 0)])
    second_done = asyncio.Event()

    async def script(n: int) -> None:
        if n == 2:
            second_done.set()
            return
        raise OSError("database down")  # batch 1 retries until shutdown abandons it

    writer = ScriptedWriter(consumer, script)
    await run_until(writer, second_done.is_set)
    # Batch 2 shares no partition with batch 1, but it commits nothing either: the order of
    # commits is kept whole rather than reasoned about per partition.
    assert consumer.commits == []


async def test_shutdown_finishes_every_batch_in_hand() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(0, 2), batch(0, 4)])
    release = asyncio.Event()

    async def script(_n: int) -> None:
        await release.wait()

    writer = ScriptedWriter(consumer, script)
    stop = asyncio.Event()
    loop = asyncio.create_task(writer.run(stop))
    await until(lambda: writer.running == 2, timeout_s=5, interval_s=0.005)
    stop.set()
    release.set()
    await asyncio.wait_for(loop, 5)
    writer._kafka_thread.shutdown(wait=True)
    # the two batches in PostgreSQL commit; the third, fetched but not begun, is redelivered
    assert consumer.commits == [{0: 2}, {0: 4}]


async def test_a_pool_of_one_keeps_batches_serial() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(0, 2), batch(0, 4)])

    async def script(_n: int) -> None:
        await asyncio.sleep(0.01)

    writer = ScriptedWriter(consumer, script, pool_max_size=1)
    await run_until(writer, lambda: len(consumer.commits) == 3)
    assert writer.most_running == 1
    assert consumer.commits == [{0: 2}, {0: 4}, {0: 6}]


@pytest.mark.parametrize(("wanted", "pool", "depth"), [(2, 4, 2), (4, 2, 2), (2, 1, 1), (1, 4, 1), (0, 4, 1)])
def test_batches_in_flight_is_capped_by_the_pool(wanted: int, pool: int, depth: int) -> None:
    assert batches_in_flight(wanted, pool) == depth
