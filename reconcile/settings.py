"""Reconciler settings: one frozen object per run, built from the environment by the CLI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar

from msgspec import Meta

from flashgate.fingerprint import DEFAULT_IDEM_TTL_S
from flashgate.kafka_client import PLAINTEXT, KafkaSecurity
from flashgate.names import ORDERS_TOPIC, WRITERS_GROUP
from flashgate.redis_url import check as check_redis_url
from flashgate.settings import check, load


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    """REDIS_URL, DATABASE_URL, KAFKA_BOOTSTRAP; FLASHGATE_TOPIC, FLASHGATE_GROUP and FLASHGATE_IDEM_TTL_S,
    the pipeline's own, as the gate and the worker read them; FLASHGATE_RECONCILE_BACKLOG_TIMEOUT_S;
    Kafka TLS/SASL from FLASHGATE_KAFKA_*."""

    SCOPE: ClassVar[str] = "RECONCILE"
    NOT_FROM_ENV: ClassVar[tuple[str, ...]] = ("kafka_security",)
    # The reconciler read the worker's names when it had no FLASHGATE_TOPIC or group of its own.
    ALIASES: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "topic": ("FLASHGATE_WORKER_TOPIC",),
        "group": ("FLASHGATE_WORKER_GROUP",),
    }

    redis_url: str
    database_url: str
    kafka_bootstrap: str
    topic: str = ORDERS_TOPIC
    group: str = WRITERS_GROUP
    idem_ttl_s: Annotated[int, Meta(ge=1)] = DEFAULT_IDEM_TTL_S
    backlog_timeout_s: float = 60.0
    kafka_security: KafkaSecurity = PLAINTEXT

    def __post_init__(self) -> None:
        check(self)
        check_redis_url(self.redis_url)  # RedisUrlError, a ConfigError naming REDIS_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReconcileSettings:
        e = os.environ if env is None else env
        return load(cls, e, given={"kafka_security": KafkaSecurity.from_env(e)})
