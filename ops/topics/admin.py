"""Apply topic specs with Kafka's admin API: read what exists, plan (ops.topics.spec), change, report.

Blocking calls, each bounded by `timeout_s`; every Kafka failure becomes KafkaUnavailable with
Kafka's own one-line reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from ops.topics.errors import DriftRefused, KafkaUnavailable
from ops.topics.spec import Observed, TopicPlan, TopicSpec, plan


@dataclass(frozen=True)
class Report:
    """The plans made, and whether their changes were applied (False: `--check`)."""

    plans: tuple[TopicPlan, ...]
    applied: bool

    @property
    def changes(self) -> list[str]:
        return [c for p in self.plans for c in p.changes]

    @property
    def refusals(self) -> list[str]:
        return [r for p in self.plans for r in p.refusals]

    def raise_refusals(self) -> None:
        """DriftRefused naming the first refusal (and how many more), if there is any."""
        refusals = self.refusals
        if refusals:
            more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
            raise DriftRefused(refusals[0] + more)


def ensure(admin: AdminClient, specs: Sequence[TopicSpec], *, fix: bool = True, timeout_s: float = 30) -> Report:
    """Bring every topic to its spec (or, without `fix`, only report); idempotent.

    Fixable drift is fixed even when drift of the same or another topic is refused: the report
    carries the refusals (`raise_refusals()`). Raises SpecError when a topic cannot be created on
    the brokers that are up, KafkaUnavailable when Kafka fails.
    """
    brokers, observed = observe(admin, [s.name for s in specs], timeout_s=timeout_s)
    plans = tuple(plan(s, observed.get(s.name), brokers=brokers) for s in specs)
    if fix:
        apply(admin, plans, timeout_s=timeout_s)
    return Report(plans, applied=fix)


def observe(admin: AdminClient, names: Sequence[str], *, timeout_s: float) -> tuple[int, dict[str, Observed]]:
    """(brokers up, the named topics that exist) as Kafka reports them."""
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as e:
        raise KafkaUnavailable(f"kafka: cannot read metadata: {_reason(e)}") from e
    present = [n for n in names if n in meta.topics and meta.topics[n].error is None]
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in present]
    configs = {}
    if resources:  # describe_configs refuses an empty list
        futures = admin.describe_configs(resources, request_timeout=timeout_s)
        configs = _wait(futures, "reading topic configs", timeout_s)
    observed = {}
    for resource, entries in configs.items():
        topic = meta.topics[resource.name]
        counts = [len(p.replicas) for p in topic.partitions.values()] or [0]
        observed[resource.name] = Observed(
            name=resource.name,
            partitions=len(topic.partitions),
            replicas=(min(counts), max(counts)),
            configs={k: e.value for k, e in entries.items() if e.value is not None},
        )
    return len(meta.brokers), observed


def apply(admin: AdminClient, plans: Sequence[TopicPlan], *, timeout_s: float) -> None:
    """Create topics, add partitions, set configs, as planned; waits for Kafka to confirm each."""
    new = [NewTopic(p.spec.name, p.spec.partitions, p.spec.replication_factor, config=dict(p.spec.configs))
           for p in plans if p.create]  # fmt: skip
    if new:
        futures = admin.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
        _wait(futures, "creating topics", timeout_s)
    grow = [NewPartitions(p.spec.name, p.partitions_to) for p in plans if p.partitions_to]
    if grow:
        _wait(admin.create_partitions(grow, request_timeout=timeout_s), "adding partitions", timeout_s)
    alter = [
        ConfigResource(ResourceType.TOPIC, p.spec.name, incremental_configs=_set(p.set_configs))
        for p in plans
        if p.set_configs
    ]
    if alter:
        _wait(admin.incremental_alter_configs(alter, request_timeout=timeout_s), "setting topic configs", timeout_s)


def _set(configs: Mapping[str, str]) -> list[ConfigEntry]:
    return [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]


def _wait(futures: dict[Any, Future[Any]], what: str, timeout_s: float) -> dict[Any, Any]:
    """Each future's result; Kafka's refusal or no answer at all becomes KafkaUnavailable."""
    results = {}
    for key, future in futures.items():
        try:
            # A little past the request's own timeout, so Kafka's own error, when it has one, comes first.
            results[key] = future.result(timeout=timeout_s + min(timeout_s, 5.0))
        except KafkaException as e:
            raise KafkaUnavailable(f"kafka: {what} failed for {getattr(key, 'name', key)}: {_reason(e)}") from e
        except FutureTimeout as e:
            raise KafkaUnavailable(f"kafka: {what} got no answer within {timeout_s:g} s") from e
    return results


def _reason(e: KafkaException) -> str:
    err: Any = e.args[0] if e.args else None
    return str(err.str()) if isinstance(err, KafkaError) else str(e)
