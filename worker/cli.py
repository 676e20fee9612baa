"""`flashgate worker`: run one batch writer process (start several to share the partitions)."""

from __future__ import annotations

import logging

import click
import uvloop

from worker.errors import ConfigError
from worker.main import serve
from worker.settings import WorkerSettings


@click.command("worker")
@click.option("--batch-max-rows", type=int, help="Messages per batch at most (env FLASHGATE_WORKER_BATCH_MAX_ROWS).")
@click.option("--batch-max-wait-ms", type=int, help="Wait at most this long to fill a batch.")
@click.option("--pool-max-size", type=int, help="PostgreSQL connections at most.")
@click.option("--batches-in-flight", type=int, help="Batches in PostgreSQL at once, one connection each (2).")
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on 127.0.0.1:PORT (0 = off).")
@click.option("--topic", help="Topic to consume (default orders).")
@click.option("--group", help="Consumer group (default flashgate-writers).")
@click.option("--dlq-topic", help="Dead-letter topic (default orders.dlq).")
def worker_command(**options: object) -> None:
    """Persist orders from Kafka to PostgreSQL, exactly once in effect. Reads DATABASE_URL, KAFKA_BOOTSTRAP."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = WorkerSettings.from_env(options)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    uvloop.run(serve(settings))
