"""`flashgate worker`: run one batch writer process (start several to share the partitions)."""

from __future__ import annotations

import click
import uvloop

from flashgate import logs
from flashgate.settings import ConfigError, option_help
from worker.main import serve
from worker.settings import WorkerSettings

W = WorkerSettings


@click.command("worker")
@click.option("--batch-max-rows", type=int, help=option_help(W, "batch_max_rows", "Messages per batch at most (2000)."))
@click.option(
    "--batch-max-wait-ms",
    type=int,
    help=option_help(W, "batch_max_wait_ms", "Wait at most this long to fill a batch (50)."),
)
@click.option("--pool-max-size", type=int, help=option_help(W, "pool_max_size", "PostgreSQL connections at most (4)."))
@click.option(
    "--batches-in-flight",
    type=int,
    help=option_help(W, "batches_in_flight", "Batches in PostgreSQL at once, one connection each (2)."),
)
@click.option(
    "--metrics-port", type=int, help=option_help(W, "metrics_port", "Serve Prometheus metrics on this port (0 = off).")
)
@click.option("--topic", help=option_help(W, "topic", "Topic to consume (orders)."))
@click.option("--group", help=option_help(W, "group", "Consumer group (flashgate-writers)."))
@click.option("--dlq-topic", help=option_help(W, "dlq_topic", "Dead-letter topic (orders.dlq)."))
@logs.log_options()
def worker_command(log_format: str, log_level: str, **options: object) -> None:
    """Persist orders from Kafka to PostgreSQL, exactly once in effect.

    Reads DATABASE_URL, KAFKA_BOOTSTRAP, FLASHGATE_TOPIC, FLASHGATE_GROUP, FLASHGATE_WORKER_* and
    FLASHGATE_KAFKA_* (docs/configuration.md); an option wins over its variable.
    """
    logs.setup(log_format, log_level)
    try:
        settings = WorkerSettings.from_env(options)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    uvloop.run(serve(settings))
