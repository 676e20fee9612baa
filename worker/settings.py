"""Worker settings: one frozen object per process, built from the environment in `main()`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from flashgate.kafka_client import PLAINTEXT, KafkaConfigError, KafkaSecurity
from flashgate.names import DLQ_TOPIC, ORDERS_TOPIC, WRITERS_GROUP
from worker.errors import ConfigError

ENV_PREFIX = "FLASHGATE_WORKER_"


@dataclass(frozen=True)
class WorkerSettings:
    """Everything one worker process needs; units are in the names.

    Environment: DATABASE_URL, KAFKA_BOOTSTRAP, and FLASHGATE_WORKER_<FIELD> for the rest
    (e.g. FLASHGATE_WORKER_BATCH_MAX_ROWS=2000); Kafka TLS/SASL from FLASHGATE_KAFKA_*.
    """

    database_url: str
    kafka_bootstrap: str
    topic: str = ORDERS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    group: str = WRITERS_GROUP
    batch_max_rows: int = 2000
    batch_max_wait_ms: int = 50
    # The broker holds a fetch until this many bytes are there or this long passed (librdkafka:
    # fetch.min.bytes 1 and fetch.wait.max.ms 500 by default, i.e. a fetch per produce request
    # under load). Shorter than batch_max_wait_ms, so a batch waits no longer than it already
    # may; README (Worker) has the measurement.
    fetch_min_bytes: int = 65_536
    fetch_wait_max_ms: int = 25
    pool_min_size: int = 1
    pool_max_size: int = 4
    # Batches in PostgreSQL at once, each on its own connection (capped by pool_max_size).
    batches_in_flight: int = 2
    pool_acquire_timeout_s: float = 10.0
    retry_initial_ms: int = 100
    retry_max_ms: int = 5000
    dlq_timeout_s: float = 30.0
    commit_timeout_s: float = 30.0
    max_poll_interval_ms: int = 600_000
    metrics_port: int = 0  # 0 = no metrics endpoint
    metrics_host: str = "127.0.0.1"  # the image sets 0.0.0.0, so Prometheus can scrape a container
    kafka_security: KafkaSecurity = PLAINTEXT  # TLS/SASL: FLASHGATE_KAFKA_* (flashgate/kafka_client.py)

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
    ) -> WorkerSettings:
        """Read settings; explicit `overrides` (from CLI options) win over the environment."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "kafka_security":
                continue
            if f.name in ("database_url", "kafka_bootstrap"):
                raw = env.get(f.name.upper())
            else:
                raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        for required in ("database_url", "kafka_bootstrap"):
            if required not in values:
                raise ConfigError(f'{required.upper()} is not set (hint: eval "$(flashgate stack env)")')
        try:
            values["kafka_security"] = KafkaSecurity.from_env(env)
        except KafkaConfigError as e:
            raise ConfigError(str(e)) from e
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.batch_max_rows < 1 or self.batch_max_wait_ms < 0:
            raise ConfigError("batch_max_rows must be >= 1 and batch_max_wait_ms >= 0")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            raise ConfigError("need 1 <= pool_min_size <= pool_max_size")
        if self.fetch_min_bytes < 1 or self.fetch_wait_max_ms < 0:
            raise ConfigError("fetch_min_bytes must be >= 1 and fetch_wait_max_ms >= 0")
        if self.batches_in_flight < 1:
            raise ConfigError("batches_in_flight must be >= 1")
        if self.retry_initial_ms < 1 or self.retry_max_ms < self.retry_initial_ms:
            raise ConfigError("need 1 <= retry_initial_ms <= retry_max_ms")


def _parse(name: str, raw: str, kind: object) -> object:
    try:
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
    except ValueError as e:
        raise ConfigError(f"{name}={raw!r} is not a {kind}") from e
    return raw
