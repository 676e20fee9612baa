"""Worker settings: one frozen object per process, built from the environment in `main()`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar

from msgspec import Meta

from flashgate import otel
from flashgate.kafka_client import PLAINTEXT, KafkaSecurity
from flashgate.names import DLQ_TOPIC, ORDERS_TOPIC, WRITERS_GROUP
from flashgate.settings import ConfigError, check, load, variable

AtLeast1 = Annotated[int, Meta(ge=1)]
AtLeast0 = Annotated[int, Meta(ge=0)]


@dataclass(frozen=True)
class WorkerSettings:
    """Everything one worker process needs; units are in the names.

    Environment: DATABASE_URL, KAFKA_BOOTSTRAP, FLASHGATE_TOPIC, FLASHGATE_GROUP, and
    FLASHGATE_WORKER_<FIELD> for the rest (e.g. FLASHGATE_WORKER_BATCH_MAX_ROWS=2000); Kafka TLS/SASL
    from FLASHGATE_KAFKA_* (docs/configuration.md).
    """

    SCOPE: ClassVar[str] = "WORKER"
    NOT_FROM_ENV: ClassVar[tuple[str, ...]] = ("kafka_security",)
    ALIASES: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "topic": ("FLASHGATE_WORKER_TOPIC",),
        "group": ("FLASHGATE_WORKER_GROUP",),
    }

    database_url: str
    kafka_bootstrap: str
    topic: str = ORDERS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    group: str = WRITERS_GROUP
    batch_max_rows: AtLeast1 = 2000
    batch_max_wait_ms: AtLeast0 = 50
    # The broker holds a fetch until this many bytes are there or this long passed (librdkafka:
    # fetch.min.bytes 1 and fetch.wait.max.ms 500 by default, i.e. a fetch per produce request
    # under load). Shorter than batch_max_wait_ms, so a batch waits no longer than it already
    # may; docs/benchmarks.md has the measurement.
    fetch_min_bytes: AtLeast1 = 65_536
    fetch_wait_max_ms: AtLeast0 = 25
    pool_min_size: AtLeast1 = 1
    pool_max_size: AtLeast1 = 4
    # Batches in PostgreSQL at once, each on its own connection (capped by pool_max_size).
    batches_in_flight: AtLeast1 = 2
    pool_acquire_timeout_s: float = 10.0
    retry_initial_ms: AtLeast1 = 100
    retry_max_ms: int = 5000
    dlq_timeout_s: float = 30.0
    commit_timeout_s: float = 30.0
    max_poll_interval_ms: int = 600_000
    metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 0  # 0 = no metrics endpoint
    metrics_host: str = "127.0.0.1"  # the image sets 0.0.0.0, so Prometheus can scrape a container
    otlp_endpoint: str = ""  # OpenTelemetry export over OTLP/HTTP (flashgate/otel.py); "": off
    kafka_security: KafkaSecurity = PLAINTEXT  # TLS/SASL: FLASHGATE_KAFKA_* (flashgate/kafka_client.py)

    def __post_init__(self) -> None:
        check(self)
        otel.check_endpoint(self.otlp_endpoint)
        if self.pool_min_size > self.pool_max_size:
            raise ConfigError(f"need {_name('pool_min_size')} <= {_name('pool_max_size')}")
        if self.retry_max_ms < self.retry_initial_ms:
            raise ConfigError(f"need {_name('retry_initial_ms')} <= {_name('retry_max_ms')}")

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
    ) -> WorkerSettings:
        """Read settings; explicit `overrides` (from CLI options) win over the environment."""
        e = os.environ if env is None else env
        return load(cls, e, given={"kafka_security": KafkaSecurity.from_env(e)}, overrides=overrides)


def _name(field: str) -> str:
    return variable(WorkerSettings, field)
