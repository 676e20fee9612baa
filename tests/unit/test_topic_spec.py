"""The topic spec and the pure drift decision: what is created, fixed, or refused."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaError, KafkaException

from ops.topics.admin import Report, _wait
from ops.topics.errors import DriftRefused, KafkaUnavailable, SpecError
from ops.topics.spec import (
    DLQ_RETENTION_MS,
    ORDERS_RETENTION_MS,
    Observed,
    TopicSpec,
    pipeline_specs,
    plan,
    stack_specs,
)


def orders_spec(**kw: int) -> TopicSpec:
    return pipeline_specs(**kw)[0]  # type: ignore[arg-type]


def as_is(spec: TopicSpec, **changes: object) -> Observed:
    """What Kafka would report for a topic made exactly to `spec`, with `changes`."""
    fields: dict[str, object] = {
        "name": spec.name,
        "partitions": spec.partitions,
        "replicas": (spec.replication_factor, spec.replication_factor),
        "configs": {**spec.configs, "segment.bytes": "1073741824"},
        **changes,
    }
    return Observed(**fields)  # type: ignore[arg-type]


def test_production_defaults() -> None:
    orders, dlq = pipeline_specs()
    assert (orders.name, orders.partitions, orders.replication_factor) == ("orders", 6, 3)
    assert dict(orders.configs) == {
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
        "retention.ms": str(ORDERS_RETENTION_MS),
        "cleanup.policy": "delete",
    }
    assert (dlq.name, dlq.partitions, dlq.replication_factor) == ("orders.dlq", 1, 3)
    assert dlq.configs["retention.ms"] == str(DLQ_RETENTION_MS)


@pytest.mark.parametrize(("brokers", "rf", "isr"), [(1, 1, "1"), (3, 3, "2"), (5, 3, "2")])
def test_stack_scales_the_spec_to_its_brokers(brokers: int, rf: int, isr: str) -> None:
    for spec in stack_specs(brokers, partitions=6):
        assert spec.replication_factor == rf
        assert spec.configs["min.insync.replicas"] == isr
        assert spec.configs["unclean.leader.election.enable"] == "false"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"replication_factor": 1, "min_insync_replicas": 2}, r"min.insync.replicas 2 must be within 1..1"),
        ({"min_insync_replicas": 0}, r"min.insync.replicas 0 must be within 1..3"),
        ({"partitions": 0}, "partitions and replication factor must be >= 1"),
        ({"orders_retention_ms": 60_000}, "retention must be at least one day"),
    ],
)
def test_specs_that_cannot_work(kw: dict[str, int], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        pipeline_specs(**kw)  # type: ignore[arg-type]


def test_missing_topic_is_created() -> None:
    spec = orders_spec()
    p = plan(spec, None, brokers=3)
    assert p.create
    assert not p.refusals
    assert p.changes == (
        "orders: created, 6 partitions, replication factor 3, cleanup.policy=delete, min.insync.replicas=2, "
        f"retention.ms={ORDERS_RETENTION_MS}, unclean.leader.election.enable=false",
    )


def test_missing_topic_needs_enough_brokers_up() -> None:
    with pytest.raises(SpecError, match=r"replication factor 3 needs 3 brokers, 2 are up \(use --replication-factor 2"):
        plan(orders_spec(), None, brokers=2)


def test_topic_in_spec_needs_nothing() -> None:
    spec = orders_spec()
    p = plan(spec, as_is(spec), brokers=3)
    assert p.in_spec
    assert p.changes == ()


def test_config_drift_is_fixed() -> None:
    spec = orders_spec()
    drifted = {**spec.configs, "min.insync.replicas": "1"}
    del drifted["retention.ms"]
    p = plan(spec, as_is(spec, configs=drifted), brokers=3)
    assert dict(p.set_configs) == {"min.insync.replicas": "2", "retention.ms": str(ORDERS_RETENTION_MS)}
    assert p.changes == (
        "orders: min.insync.replicas 1 -> 2",
        f"orders: retention.ms (unset) -> {ORDERS_RETENTION_MS}",
    )
    assert not p.refusals


def test_fewer_partitions_are_added() -> None:
    spec = orders_spec()
    p = plan(spec, as_is(spec, partitions=4), brokers=3)
    assert p.partitions_to == 6
    assert p.changes == ("orders: partitions 4 -> 6",)


def test_more_partitions_are_refused() -> None:
    spec = orders_spec()
    p = plan(spec, as_is(spec, partitions=12), brokers=3)
    assert p.refusals == (
        "orders: 12 partitions, the spec says 6; Kafka cannot remove partitions: "
        "pass --partitions 12 or recreate the topic",
    )
    assert p.partitions_to is None


@pytest.mark.parametrize(("replicas", "have"), [((1, 1), "1"), ((2, 3), "2..3")])
def test_other_replication_is_refused_and_the_topic_left_alone(replicas: tuple[int, int], have: str) -> None:
    spec = orders_spec()
    # min.insync.replicas=2 on a topic of one replica would stop every write: nothing is changed.
    observed = as_is(spec, replicas=replicas, partitions=4, configs={"min.insync.replicas": "1"})
    p = plan(spec, observed, brokers=3)
    assert p.refusals[0].startswith(f"orders: replication factor is {have}, the spec says 3; flashgate does not move")
    assert (p.create, p.partitions_to, dict(p.set_configs), p.changes) == (False, None, {}, ())
    assert not p.in_spec


def test_kafka_that_never_answers_is_a_typed_error() -> None:
    with pytest.raises(KafkaUnavailable, match=r"kafka: creating topics got no answer within 0.05 s"):
        _wait({"orders": Future()}, "creating topics", 0.05)


def test_kafka_refusal_names_the_topic_and_kafkas_reason() -> None:
    refused: Future[None] = Future()
    refused.set_exception(KafkaException(KafkaError(KafkaError.POLICY_VIOLATION, "no creations here")))
    with pytest.raises(KafkaUnavailable, match="kafka: creating topics failed for orders: no creations here"):
        _wait({"orders": refused}, "creating topics", 1)


def test_refusals_are_raised_as_one_line() -> None:
    spec = orders_spec()
    plans = (plan(spec, as_is(spec, partitions=8), brokers=3), plan(spec, as_is(spec, replicas=(1, 1)), brokers=3))
    report = Report(plans, applied=True)
    with pytest.raises(DriftRefused, match=r"^orders: 8 partitions, the spec says 6; .* \(and 1 more\)$"):
        report.raise_refusals()
    Report(plans[:0], applied=True).raise_refusals()  # nothing refused: nothing raised
