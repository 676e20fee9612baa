"""The monitor's settings: one frozen object, built from the environment and CLI options in main()."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from flashgate.kafka_client import PLAINTEXT, KafkaConfigError, KafkaSecurity
from flashgate.names import ORDERS_TOPIC, WRITERS_GROUP
from flashgate.redis_url import RedisUrlError, check
from ops.monitor.errors import MonitorConfigError

ENV_PREFIX = "FLASHGATE_MONITOR_"
DEFAULT_PORT = 9102


@dataclass(frozen=True)
class MonitorSettings:
    """Where to look and how often; units in the names.

    Environment: REDIS_URL, KAFKA_BOOTSTRAP, DATABASE_URL (optional: drift), and FLASHGATE_MONITOR_<FIELD> for the rest
    (e.g. FLASHGATE_MONITOR_PORT=9102, FLASHGATE_MONITOR_INTERVAL_MS=5000); Kafka TLS/SASL from FLASHGATE_KAFKA_*.
    """

    redis_url: str
    kafka_bootstrap: str
    group: str = WRITERS_GROUP
    topic: str = ORDERS_TOPIC
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    interval_ms: int = 5000
    timeout_ms: int = 3000  # per Kafka admin request and per Redis command
    database_url: str | None = None  # set (DATABASE_URL): export the reconciler's drift too
    drift_interval_ms: int = 60_000  # the drift check reads the whole Kafka backlog: not every interval
    kafka_security: KafkaSecurity = PLAINTEXT

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
    ) -> MonitorSettings:
        """Read settings; explicit `overrides` (CLI options) win over the environment."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "kafka_security":
                continue
            plain = ("redis_url", "kafka_bootstrap", "database_url")
            name = f.name.upper() if f.name in plain else ENV_PREFIX + f.name.upper()
            raw = env.get(name)
            if raw:
                values[f.name] = _int(name, raw) if f.type in ("int", int) else raw
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        for required in ("redis_url", "kafka_bootstrap"):
            if required not in values:
                raise MonitorConfigError(f'{required.upper()} is not set (hint: eval "$(flashgate stack env)")')
        try:
            check(str(values["redis_url"]))
        except RedisUrlError as e:
            raise MonitorConfigError(str(e)) from e
        try:
            values["kafka_security"] = KafkaSecurity.from_env(env)
        except KafkaConfigError as e:
            raise MonitorConfigError(str(e)) from e
        settings = cls(**values)  # type: ignore[arg-type]
        if not 0 <= settings.port <= 65535:
            raise MonitorConfigError(f"{ENV_PREFIX}PORT={settings.port} is outside 0-65535")
        if settings.interval_ms < 100 or settings.timeout_ms < 100:
            raise MonitorConfigError(f"{ENV_PREFIX}INTERVAL_MS and {ENV_PREFIX}TIMEOUT_MS must be >= 100")
        return settings


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as e:
        raise MonitorConfigError(f"{name}={raw!r} is not an integer") from e
