"""The monitor's settings: one frozen object, built from the environment and CLI options in main()."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar

from msgspec import Meta

from flashgate.kafka_client import PLAINTEXT, KafkaSecurity
from flashgate.names import ORDERS_TOPIC, WRITERS_GROUP
from flashgate.redis_url import check as check_redis_url
from flashgate.settings import check, load

DEFAULT_PORT = 9102
AtLeast100 = Annotated[int, Meta(ge=100)]


@dataclass(frozen=True)
class MonitorSettings:
    """Where to look and how often; units in the names.

    Environment: REDIS_URL, KAFKA_BOOTSTRAP, DATABASE_URL (optional: drift), FLASHGATE_GROUP,
    FLASHGATE_TOPIC, and FLASHGATE_MONITOR_<FIELD> for the rest (e.g. FLASHGATE_MONITOR_PORT=9102,
    FLASHGATE_MONITOR_INTERVAL_MS=5000); Kafka TLS/SASL from FLASHGATE_KAFKA_* (docs/configuration.md).
    """

    SCOPE: ClassVar[str] = "MONITOR"
    NOT_FROM_ENV: ClassVar[tuple[str, ...]] = ("kafka_security",)
    ALIASES: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "topic": ("FLASHGATE_MONITOR_TOPIC",),
        "group": ("FLASHGATE_MONITOR_GROUP",),
    }

    redis_url: str
    kafka_bootstrap: str
    group: str = WRITERS_GROUP
    topic: str = ORDERS_TOPIC
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = DEFAULT_PORT
    interval_ms: AtLeast100 = 5000
    timeout_ms: AtLeast100 = 3000  # per Kafka admin request and per Redis command
    database_url: str | None = None  # set (DATABASE_URL): export the reconciler's drift too
    drift_interval_ms: int = 60_000  # the drift check reads the whole Kafka backlog: not every interval
    kafka_security: KafkaSecurity = PLAINTEXT

    def __post_init__(self) -> None:
        check(self)

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
    ) -> MonitorSettings:
        """Read settings; explicit `overrides` (CLI options) win over the environment."""
        e = os.environ if env is None else env
        settings = load(cls, e, given={"kafka_security": KafkaSecurity.from_env(e)}, overrides=overrides)
        check_redis_url(settings.redis_url)  # RedisUrlError, a ConfigError naming REDIS_URL
        return settings
