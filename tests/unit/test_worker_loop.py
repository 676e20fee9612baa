"""The worker's consumer loop (worker/consumer.py) where test_worker_overlap.py does not go: poison,
consumer errors, commit failures. Kafka and PostgreSQL are doubles (tests/support/fakes.py).
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from tests.support.fakes import FakeConsumer, ScriptedWriter, batch, message, run_until, running
from tests.support.poll import until


async def test_poison_is_dead_lettered_and_the_batch_commits_only_once_the_dlq_acknowledged() -> None:
    (good,) = batch(0, 0, n=1)
    consumer = FakeConsumer([[good, message(0, 1, b"{oops")]])
    writer = ScriptedWriter(consumer)
    writer.dlq.flush_error = KafkaError(KafkaError._MSG_TIMED_OUT, "timed out")  # the DLQ is down at first

    async with running(writer):
        await until(lambda: len(writer.dlq.sent) >= 2, timeout_s=5, interval_s=0.005)  # sent, retried
        assert consumer.commits == []  # nothing committed while the poison is not in the DLQ
        writer.dlq.flush_error = None
        await until(lambda: len(consumer.commits) == 1, timeout_s=5, interval_s=0.005)
    assert consumer.commits == [{0: 2}]  # the good order and the poison, past both
    dead = writer.dlq.sent[-1]
    assert (dead.topic, dead.value) == ("orders.dlq", b"{oops")
    headers = dict(dead.headers)
    assert (headers["source_partition"], headers["source_offset"]) == (b"0", b"1")
    assert headers["error"]


async def test_consumer_errors_are_skipped_and_the_orders_beside_them_committed() -> None:
    eof = message(0, 2, None, error=KafkaError(KafkaError._PARTITION_EOF))
    transport = message(1, 0, None, error=KafkaError(KafkaError._TRANSPORT, "broker down"))
    consumer = FakeConsumer([[*batch(0, 0), eof, transport]])
    writer = ScriptedWriter(consumer)
    await run_until(writer, lambda: len(consumer.commits) == 1)
    assert consumer.commits == [{0: 2}]
    assert writer.dlq.sent == []


async def test_a_commit_refused_after_a_rebalance_is_dropped_and_the_loop_goes_on() -> None:
    consumer = FakeConsumer([batch(0, 0), batch(0, 2)])
    consumer.commit_errors.append(KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION)))
    writer = ScriptedWriter(consumer)
    await run_until(writer, lambda: len(consumer.commits) == 1)
    # The first batch's commit was refused (the new owner redelivers it): not retried.
    assert consumer.commits == [{0: 4}]
    assert writer.numbers == {(0, 0): 1, (0, 2): 2}


async def test_a_commit_that_fails_otherwise_is_retried_until_it_succeeds() -> None:
    consumer = FakeConsumer([batch(0, 0)])
    consumer.commit_errors.extend(KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down")) for _ in range(2))
    writer = ScriptedWriter(consumer)
    await run_until(writer, lambda: len(consumer.commits) == 1)
    assert consumer.commits == [{0: 2}]
    assert not consumer.commit_errors
