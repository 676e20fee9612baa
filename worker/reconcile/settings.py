"""Reconciler settings: one frozen object per run, built from the environment by the CLI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from flashgate.fingerprint import DEFAULT_IDEM_TTL_S
from flashgate.kafka_client import PLAINTEXT, KafkaConfigError, KafkaSecurity
from flashgate.names import ORDERS_TOPIC, WRITERS_GROUP
from flashgate.redis_url import RedisUrlError, check
from worker.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    """REDIS_URL, DATABASE_URL, KAFKA_BOOTSTRAP; FLASHGATE_IDEM_TTL_S and FLASHGATE_TOPIC as the gate
    reads them, FLASHGATE_WORKER_GROUP as the worker does, Kafka TLS/SASL from FLASHGATE_KAFKA_*."""

    redis_url: str
    database_url: str
    kafka_bootstrap: str
    topic: str = ORDERS_TOPIC
    group: str = WRITERS_GROUP
    idem_ttl_s: int = DEFAULT_IDEM_TTL_S
    backlog_timeout_s: float = 60.0
    kafka_security: KafkaSecurity = PLAINTEXT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReconcileSettings:
        e = os.environ if env is None else env
        missing = [v for v in ("REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP") if not e.get(v)]
        if missing:
            raise ConfigError(f'{", ".join(missing)} not set (hint: eval "$(flashgate stack env)")')
        raw_ttl = e.get("FLASHGATE_IDEM_TTL_S", str(DEFAULT_IDEM_TTL_S))
        try:
            ttl = int(raw_ttl)
        except ValueError as err:
            raise ConfigError(f"FLASHGATE_IDEM_TTL_S must be an integer, not {raw_ttl!r}") from err
        if ttl < 1:
            raise ConfigError(f"FLASHGATE_IDEM_TTL_S must be at least 1, not {ttl}")
        try:
            check(e["REDIS_URL"])
        except RedisUrlError as err:
            raise ConfigError(str(err)) from err
        try:
            security = KafkaSecurity.from_env(e)
        except KafkaConfigError as err:
            raise ConfigError(str(err)) from err
        return cls(
            redis_url=e["REDIS_URL"],
            database_url=e["DATABASE_URL"],
            kafka_bootstrap=e["KAFKA_BOOTSTRAP"],
            topic=e.get("FLASHGATE_TOPIC") or e.get("FLASHGATE_WORKER_TOPIC") or ORDERS_TOPIC,
            group=e.get("FLASHGATE_WORKER_GROUP") or WRITERS_GROUP,
            idem_ttl_s=ttl,
            kafka_security=security,
        )
