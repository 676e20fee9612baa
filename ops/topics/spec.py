"""The topic spec of the pipeline, and the pure comparison of a spec with what Kafka has.

One spec for every place topics are made: `flashgate topics ensure` (production, defaults below)
and `flashgate stack up` (the local stack, scaled to its broker count). `plan()` decides, without
I/O, what to do about one topic: create it, add partitions, set configs, or refuse.

What is fixed and what is refused:
- missing topic: created with the spec's partitions, replication factor and configs;
- fewer partitions than the spec: partitions added (messages carry no key, so nothing relies
  on a key's partition; the worker deduplicates by order id);
- a config that differs: set to the spec's value (incremental, other configs untouched);
- more partitions than the spec: refused, Kafka cannot remove partitions;
- another replication factor: refused, moving replicas is a reassignment for a person to plan.
A topic with refused drift is left alone entirely (its configs may only fit the spec's replicas).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flashgate.names import DLQ_TOPIC, ORDERS_TOPIC
from ops.topics.errors import SpecError

DAY_MS = 86_400_000
# The reconciler reads the backlog past the writers' committed offsets, so orders must outlive any
# outage of every worker (a long weekend included); the DLQ is read by a person, later still.
ORDERS_RETENTION_MS = 7 * DAY_MS
DLQ_RETENTION_MS = 28 * DAY_MS
ORDERS_PARTITIONS = 6
REPLICATION_FACTOR = 3


def default_min_insync(replication_factor: int) -> int:
    """2 of 3 (or more) replicas must have a write before acks=all answers; everything with fewer."""
    return 2 if replication_factor >= 3 else 1


@dataclass(frozen=True)
class TopicSpec:
    """What one topic must be; `configs` are the topic-level configs flashgate owns."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observed:
    """What Kafka has for one topic: partition count, replicas per partition (low, high), configs."""

    name: str
    partitions: int
    replicas: tuple[int, int]
    configs: Mapping[str, str]


@dataclass(frozen=True)
class TopicPlan:
    """What to do about one topic; `refusals` are drift flashgate will not fix."""

    spec: TopicSpec
    create: bool = False
    partitions_to: int | None = None  # add partitions up to this count
    set_configs: Mapping[str, str] = field(default_factory=dict)
    changes: tuple[str, ...] = ()  # one line per change, for the report
    refusals: tuple[str, ...] = ()

    @property
    def in_spec(self) -> bool:
        return not (self.create or self.partitions_to or self.set_configs or self.refusals)


def pipeline_specs(
    *,
    partitions: int = ORDERS_PARTITIONS,
    replication_factor: int = REPLICATION_FACTOR,
    min_insync_replicas: int | None = None,
    orders_retention_ms: int = ORDERS_RETENTION_MS,
    dlq_retention_ms: int = DLQ_RETENTION_MS,
    orders_topic: str = ORDERS_TOPIC,
    dlq_topic: str = DLQ_TOPIC,
) -> list[TopicSpec]:
    """The orders topic and its DLQ; raises SpecError for values that cannot work."""
    isr = default_min_insync(replication_factor) if min_insync_replicas is None else min_insync_replicas
    if partitions < 1 or replication_factor < 1:
        raise SpecError("partitions and replication factor must be >= 1")
    if not 1 <= isr <= replication_factor:
        raise SpecError(f"min.insync.replicas {isr} must be within 1..{replication_factor} (the replication factor)")
    if orders_retention_ms < DAY_MS or dlq_retention_ms < DAY_MS:
        raise SpecError(f"retention must be at least one day ({DAY_MS} ms)")

    def configs(retention_ms: int) -> dict[str, str]:
        return {
            "min.insync.replicas": str(isr),
            "unclean.leader.election.enable": "false",
            "retention.ms": str(retention_ms),
            "cleanup.policy": "delete",
        }

    return [
        TopicSpec(orders_topic, partitions, replication_factor, configs(orders_retention_ms)),
        TopicSpec(dlq_topic, 1, replication_factor, configs(dlq_retention_ms)),
    ]


def stack_specs(brokers: int, partitions: int) -> list[TopicSpec]:
    """The spec as the local stack applies it: replication 3 (2 in sync) on a cluster, 1 on one node."""
    return pipeline_specs(partitions=partitions, replication_factor=min(brokers, REPLICATION_FACTOR))


def plan(spec: TopicSpec, observed: Observed | None, *, brokers: int) -> TopicPlan:
    """Compare one topic with its spec; `brokers` is how many brokers are up now (for a creation)."""
    if observed is None:
        if spec.replication_factor > brokers:
            rf, up = spec.replication_factor, f"{brokers} {'is' if brokers == 1 else 'are'} up"
            raise SpecError(
                f"{spec.name}: replication factor {rf} needs {rf} brokers, {up} "
                f"(use --replication-factor {brokers} for a smaller cluster)"
            )
        return TopicPlan(spec, create=True, changes=(f"{spec.name}: created, {_shape(spec)}",))
    changes: list[str] = []
    refusals: list[str] = []
    low, high = observed.replicas
    if (low, high) != (spec.replication_factor, spec.replication_factor):
        have = str(low) if low == high else f"{low}..{high}"
        refusals.append(
            f"{spec.name}: replication factor is {have}, the spec says {spec.replication_factor}; "
            "flashgate does not move replicas: reassign them (kafka-reassign-partitions) or recreate the topic"
        )
    partitions_to = None
    if observed.partitions < spec.partitions:
        partitions_to = spec.partitions
        changes.append(f"{spec.name}: partitions {observed.partitions} -> {spec.partitions}")
    elif observed.partitions > spec.partitions:
        refusals.append(
            f"{spec.name}: {observed.partitions} partitions, the spec says {spec.partitions}; "
            f"Kafka cannot remove partitions: pass --partitions {observed.partitions} or recreate the topic"
        )
    if refusals:  # e.g. min.insync.replicas 2 on a topic of 1 replica would stop every write: hands off
        return TopicPlan(spec, refusals=tuple(refusals))
    wrong = {k: v for k, v in spec.configs.items() if observed.configs.get(k) != v}
    changes += [f"{spec.name}: {k} {observed.configs.get(k, '(unset)')} -> {v}" for k, v in sorted(wrong.items())]
    return TopicPlan(
        spec, partitions_to=partitions_to, set_configs=wrong, changes=tuple(changes), refusals=tuple(refusals)
    )


def _shape(spec: TopicSpec) -> str:
    configs = ", ".join(f"{k}={v}" for k, v in sorted(spec.configs.items()))
    return f"{spec.partitions} partitions, replication factor {spec.replication_factor}, {configs}"
