"""`flashgate topics ensure` on the stack's broker: creates, is idempotent, fixes drift, refuses what it must.

Each test works on topics of its own (`--topic`/`--dlq-topic` with a random name). The session
stack has one broker, so the spec is asked for with `--replication-factor 1`. The command runs
in process (click's runner: a `flashgate` process takes 2-5 s to import on the shared box), and
once as a real process for the exit codes and one-line errors a shell sees.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from click.testing import CliRunner
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic

from ops.stack.ports import free_port
from ops.topics.cli import topics_group
from ops.topics.spec import ORDERS_RETENTION_MS
from tests.support.oncall import oncall
from tests.support.poll import eventually
from tests.support.stackctl import StackHandle


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


def ensure(stack: StackHandle, name: str, *args: str, env: dict[str, str] | None = None) -> Done:
    """`flashgate topics ensure` on `name`'s topics, in process."""
    argv = ["ensure", "--topic", f"{name}.orders", "--dlq-topic", f"{name}.dlq", *args]
    result = CliRunner().invoke(topics_group, argv, env={**stack.env, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


def one_line(done: Done | subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr.strip()


def describe(stack: StackHandle, topic: str) -> tuple[int, dict[str, str]]:
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    partitions = len(admin.list_topics(timeout=10).topics[topic].partitions)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return partitions, {k: e.value for k, e in entries.items()}


def alter(stack: StackHandle, topic: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    entries = [
        ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()
    ]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def test_creates_then_is_idempotent(stack: StackHandle, name: str) -> None:
    first = ensure(stack, name, "--replication-factor", "1", "--partitions", "3")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].startswith(f"{name}.orders: created, 3 partitions, replication factor 1")
    partitions, configs = describe(stack, f"{name}.orders")
    assert partitions == 3
    assert configs["min.insync.replicas"] == "1"
    assert configs["unclean.leader.election.enable"] == "false"
    assert configs["retention.ms"] == str(ORDERS_RETENTION_MS)

    again = ensure(stack, name, "--replication-factor", "1", "--partitions", "3")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"topics in spec: {name}.orders, {name}.dlq"


def test_drift_is_reported_by_check_then_fixed(stack: StackHandle, name: str) -> None:
    assert ensure(stack, name, "--replication-factor", "1", "--partitions", "2").returncode == 0
    alter(stack, f"{name}.orders", retention_ms="3600000", unclean_leader_election_enable="true")
    # Brokers apply config changes from the metadata log a moment after the controller took them.
    eventually(lambda: describe(stack, f"{name}.orders")[1]["retention.ms"] == "3600000")

    check = ensure(stack, name, "--replication-factor", "1", "--partitions", "4", "--check")
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        f"drift: {name}.orders: partitions 2 -> 4",
        f"drift: {name}.orders: retention.ms 3600000 -> {ORDERS_RETENTION_MS}",
        f"drift: {name}.orders: unclean.leader.election.enable true -> false",
    ]
    assert describe(stack, f"{name}.orders")[0] == 2  # --check changed nothing

    fixed = ensure(stack, name, "--replication-factor", "1", "--partitions", "4")
    assert fixed.returncode == 0, fixed.stderr
    wanted = (4, str(ORDERS_RETENTION_MS), "false")

    def shape() -> tuple[int, str, str]:
        partitions, configs = describe(stack, f"{name}.orders")
        return partitions, configs["retention.ms"], configs["unclean.leader.election.enable"]

    eventually(lambda: shape() == wanted)


def test_drift_it_will_not_fix_is_refused(stack: StackHandle, name: str) -> None:
    assert ensure(stack, name, "--replication-factor", "1", "--partitions", "4").returncode == 0
    fewer = one_line(ensure(stack, name, "--replication-factor", "1", "--partitions", "2"), 1)
    assert fewer == (
        f"topics: {name}.orders: 4 partitions, the spec says 2; Kafka cannot remove partitions: "
        "pass --partitions 4 or recreate the topic"
    )
    # A topic of one replica asked for 3: refused, and its min.insync.replicas left at 1 (2 would stop writes).
    more = one_line(ensure(stack, name, "--partitions", "4"), 1)
    assert more.startswith(f"topics: {name}.orders: replication factor is 1, the spec says 3; flashgate does not move")
    assert more.endswith("(and 1 more)")
    assert describe(stack, f"{name}.orders")[1]["min.insync.replicas"] == "1"


def test_fixes_one_topic_while_refusing_the_other(stack: StackHandle, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    admin.create_topics([NewTopic(f"{name}.dlq", 3, 1)])[f"{name}.dlq"].result(timeout=30)
    done = ensure(stack, name, "--replication-factor", "1")
    one_line(done, 1)
    assert f"{name}.dlq: 3 partitions, the spec says 1" in done.stderr
    assert describe(stack, f"{name}.orders")[0] == 6  # created all the same


def test_errors_are_one_line_with_exit_2(stack: StackHandle, name: str) -> None:
    # As a shell sees it: a real process, its exit code and its one line on stderr.
    args = ("topics", "ensure", "--topic", f"{name}.orders", "--dlq-topic", f"{name}.dlq")
    brokers = one_line(oncall(stack, *args), 2)  # replication factor 3 on the one-broker stack
    assert brokers == (
        f"topics: {name}.orders: replication factor 3 needs 3 brokers, 1 is up "
        "(use --replication-factor 1 for a smaller cluster)"
    )
    unreachable = {"KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    down = one_line(ensure(stack, name, "--timeout-s", "2", env=unreachable), 2)
    assert down.startswith("topics: kafka: cannot read metadata:")
    bad = one_line(ensure(stack, name, env={"FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}), 2)
    assert bad.startswith("topics: FLASHGATE_KAFKA_SASL_MECHANISM is not set")
    unset = one_line(ensure(stack, name, env={"KAFKA_BOOTSTRAP": ""}), 2)
    assert unset == 'topics: KAFKA_BOOTSTRAP is not set (hint: eval "$(flashgate stack env)")'


def test_a_change_kafka_refuses_is_one_line_with_exit_2(stack: StackHandle, name: str) -> None:
    refused = one_line(ensure(stack, f"{name} has spaces", "--replication-factor", "1"), 2)
    assert refused.startswith(f"topics: kafka: creating topics failed for {name} has spaces.orders: "), refused
