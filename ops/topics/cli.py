"""`flashgate topics ensure`: make the pipeline's topics match the spec, or say why not.

Exit codes (as `flashgate reconcile`): 0 every topic in spec (after the fixes), 1 drift that
flashgate will not fix, or any drift with `--check`; 2 error (bad settings, Kafka unreachable,
too few brokers for the replication factor). Every failure is one line on stderr.
"""

from __future__ import annotations

import logging
import sys

import click
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from flashgate.kafka_client import KafkaConfigError, KafkaSecurity, client_config
from flashgate.names import DLQ_TOPIC, ORDERS_TOPIC
from ops.topics.admin import ensure
from ops.topics.errors import DriftRefused, KafkaUnavailable, TopicsError
from ops.topics.spec import ORDERS_PARTITIONS, ORDERS_RETENTION_MS, REPLICATION_FACTOR, pipeline_specs

EXIT_DRIFT = 1
EXIT_ERROR = 2


def _fail(message: str, code: int) -> None:
    click.echo(f"topics: {message}", err=True)
    sys.exit(code)


def _why(errors: list[KafkaError]) -> str:
    """The reason librdkafka gave the error callback (a refused login says so only there), if any."""
    chosen = [e for e in errors if e.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)] or errors
    return f" ({chosen[-1].str()})" if chosen else ""


@click.group("topics")
def topics_group() -> None:
    """The Kafka topics of the pipeline (orders and its DLQ): one spec, applied idempotently."""


@topics_group.command("ensure")
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP", show_envvar=True, help="Kafka brokers host:port[,…].")
@click.option(
    "--partitions",
    type=int,
    default=ORDERS_PARTITIONS,
    show_default=True,
    envvar="FLASHGATE_TOPICS_PARTITIONS",
    show_envvar=True,
    help="Partitions of the orders topic (the DLQ has 1).",
)
@click.option(
    "--replication-factor",
    type=int,
    default=REPLICATION_FACTOR,
    show_default=True,
    envvar="FLASHGATE_TOPICS_REPLICATION_FACTOR",
    show_envvar=True,
    help="Replicas of every partition.",
)
@click.option(
    "--min-insync-replicas",
    type=int,
    envvar="FLASHGATE_TOPICS_MIN_INSYNC_REPLICAS",
    show_envvar=True,
    help="Replicas a write needs before acks=all answers (default 2; 1 below 3 replicas).",
)
@click.option(
    "--retention-ms",
    type=int,
    default=ORDERS_RETENTION_MS,
    show_default=True,
    envvar="FLASHGATE_TOPICS_RETENTION_MS",
    show_envvar=True,
    help="Retention of the orders topic.",
)
@click.option(
    "--topic", default=ORDERS_TOPIC, show_default=True, envvar="FLASHGATE_TOPIC", show_envvar=True, help="Orders topic."
)
@click.option(
    "--dlq-topic",
    default=DLQ_TOPIC,
    show_default=True,
    envvar="FLASHGATE_WORKER_DLQ_TOPIC",
    show_envvar=True,
    help="Dead-letter topic.",
)
@click.option("--check", is_flag=True, help="Change nothing: report drift and exit 1 if there is any.")
@click.option("--timeout-s", type=float, default=30, show_default=True, help="Per Kafka request.")
def ensure_command(
    bootstrap: str | None,
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int | None,
    retention_ms: int,
    topic: str,
    dlq_topic: str,
    check: bool,
    timeout_s: float,
) -> None:
    """Create the topics, add partitions and set configs to match the spec; refuse what needs a person.

    Kafka TLS/SASL from FLASHGATE_KAFKA_* (docs/kafka.md, Kafka security).
    """
    if not bootstrap:
        _fail('KAFKA_BOOTSTRAP is not set (hint: eval "$(flashgate stack env)")', EXIT_ERROR)
        return
    broker_errors: list[KafkaError] = []
    admin: AdminClient | None = None
    try:
        security = KafkaSecurity.from_env()
        specs = pipeline_specs(
            partitions=partitions, replication_factor=replication_factor, min_insync_replicas=min_insync_replicas,
            orders_retention_ms=retention_ms, orders_topic=topic, dlq_topic=dlq_topic,
        )  # fmt: skip
        # librdkafka's own log lines (refused connections while it retries) would bury the one-line verdict.
        quiet = logging.getLogger("flashgate.topics.kafka")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        role = {"socket.timeout.ms": int(timeout_s * 1000), "logger": quiet, "error_cb": broker_errors.append}
        admin = AdminClient(client_config(bootstrap, security, role))
        report = ensure(admin, specs, fix=not check, timeout_s=timeout_s)
    except KafkaUnavailable as e:
        if admin is not None:
            admin.poll(0)  # serves the error callbacks queued meanwhile
        _fail(str(e) + _why(broker_errors), EXIT_ERROR)
        return
    except (TopicsError, KafkaConfigError) as e:
        _fail(str(e), EXIT_ERROR)
        return
    for line in report.changes:
        click.echo(line if report.applied else f"drift: {line}")
    try:
        report.raise_refusals()
    except DriftRefused as e:
        _fail(str(e), EXIT_DRIFT)
    if check and report.changes:
        sys.exit(EXIT_DRIFT)
    if not report.changes:
        click.echo(f"topics in spec: {', '.join(s.name for s in specs)}")
