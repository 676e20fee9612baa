"""The gate's settings: one frozen object per process, built from the environment in main()/the app factory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

from msgspec import Meta

from flashgate import otel
from flashgate.fingerprint import DEFAULT_IDEM_TTL_S
from flashgate.kafka_client import PLAINTEXT, KafkaSecurity
from flashgate.names import ORDERS_TOPIC
from flashgate.redis_url import check as check_redis_url
from flashgate.redis_url import is_cluster
from flashgate.settings import ConfigError, check, field_value, load, variable

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
PROBLEM_BASE_URL = "/problems"  # docs/problems.md as the gate serves it

AtLeast1 = Annotated[int, Meta(ge=1)]


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Buyer identity: a JWT (`sub`) verified with HS256 or RS256, or, only when `disabled`, X-User-Id."""

    SCOPE: ClassVar[str] = "GATE"
    # FLASHGATE_GATE_AUTH=off turns auth off (`disabled`); the keys are read by `GateSettings.from_env`.
    ENV: ClassVar[Mapping[str, str]] = {
        "disabled": "FLASHGATE_GATE_AUTH",
        "hs256_secret": "FLASHGATE_GATE_JWT_HS256_SECRET",
        "rs256_public_key": "FLASHGATE_GATE_JWT_RS256_PUBLIC_KEY",
        "audience": "FLASHGATE_GATE_JWT_AUDIENCE",
        "issuer": "FLASHGATE_GATE_JWT_ISSUER",
    }
    ALIASES: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "disabled": ("FLASHGATE_AUTH",),
        "hs256_secret": ("FLASHGATE_JWT_HS256_SECRET",),
        "rs256_public_key": ("FLASHGATE_JWT_RS256_PUBLIC_KEY",),
        "audience": ("FLASHGATE_JWT_AUDIENCE",),
        "issuer": ("FLASHGATE_JWT_ISSUER",),
    }

    disabled: bool = False
    hs256_secret: str | None = None
    rs256_public_key: str | None = None
    audience: str | None = None
    issuer: str | None = None

    def __post_init__(self) -> None:
        check(self)
        if not self.disabled and not (self.hs256_secret or self.rs256_public_key):
            raise ConfigError(
                "auth: set FLASHGATE_GATE_JWT_HS256_SECRET or FLASHGATE_GATE_JWT_RS256_PUBLIC_KEY, "
                "or FLASHGATE_GATE_AUTH=off explicitly"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuthSettings:
        """FLASHGATE_GATE_AUTH (jwt, or off), the keys; an RS256 key not in PEM is a path to read (OSError)."""
        key = field_value(env, cls, "rs256_public_key")
        if key and not key.lstrip().startswith("-----"):
            key = Path(key).read_text()
        return load(
            cls,
            env,
            given={
                "disabled": (field_value(env, cls, "disabled") or "jwt").lower() == "off",
                "rs256_public_key": key or None,
            },
        )


@dataclass(frozen=True, slots=True)
class GateSettings:
    """Everything one gate process (or `flashgate relay`) needs; units are in the names.

    Environment: REDIS_URL, KAFKA_BOOTSTRAP, DATABASE_URL, FLASHGATE_TOPIC, FLASHGATE_IDEM_TTL_S,
    FLASHGATE_GATE_<FIELD> for the rest (FLASHGATE_GATE_RELAY=off, FLASHGATE_GATE_AUTH=off, the JWT
    keys: AuthSettings), PROMETHEUS_MULTIPROC_DIR; Kafka TLS/SASL from FLASHGATE_KAFKA_*.
    """

    SCOPE: ClassVar[str] = "GATE"
    ENV: ClassVar[Mapping[str, str]] = {
        "relay_enabled": "FLASHGATE_GATE_RELAY",  # on (default) or off
        "metrics_dir": "PROMETHEUS_MULTIPROC_DIR",  # prometheus_client's own name
    }
    NOT_FROM_ENV: ClassVar[tuple[str, ...]] = ("auth", "kafka_security")
    # Before FLASHGATE_GATE_*, the gate's own settings were FLASHGATE_<FIELD>.
    ALIASES: ClassVar[Mapping[str, tuple[str, ...]]] = {
        **{f: (f"FLASHGATE_{f.upper()}",) for f in (
            "delivery_budget_ms", "redis_timeout_ms", "breaker_failures", "breaker_cooldown_ms", "max_inflight",
            "soldout_cache_ms", "body_limit_bytes", "kafka_compression", "linger_ms", "message_timeout_ms",
            "relay_interval_ms", "relay_stale_ms", "relay_batch", "relay_discover_ms", "db_timeout_ms",
            "max_connections", "header_read_timeout_ms", "body_timeout_ms", "head_limit_bytes", "listen_backlog",
            "problem_base_url",
        )},
        "relay_enabled": ("FLASHGATE_RELAY",),
        "db_pool_max_size": ("FLASHGATE_DB_POOL_MAX",),
    }  # fmt: skip

    redis_url: str
    kafka_bootstrap: str
    auth: AuthSettings
    database_url: str | None = None  # optional: `GET /v1/orders/{id}` reports `persisted` from PostgreSQL
    topic: str = ORDERS_TOPIC
    delivery_budget_ms: int = 2000  # wait this long for Kafka before answering `queued`
    idem_ttl_s: AtLeast1 = DEFAULT_IDEM_TTL_S
    # Bounds are inclusive and checked on construction too (flashgate.settings.check).
    redis_timeout_ms: Annotated[int, Meta(ge=50, le=1000)] = 250  # per pipeline; a busy event loop eats into it
    # Redis Cluster only: a script's round trip ends with WAIT 1 <this> (a replica has it); 0: no WAIT.
    redis_wait_ms: Annotated[int, Meta(ge=0, le=1000)] = 100
    breaker_failures: int = 3
    breaker_cooldown_ms: int = 500
    max_inflight: AtLeast1 = 2048  # admissions in flight per process before 503
    soldout_cache_ms: int = 500
    body_limit_bytes: Annotated[int, Meta(ge=64)] = 4096
    kafka_compression: str = "lz4"  # librdkafka compression.type: none, gzip, snappy, lz4, zstd
    linger_ms: int = 10  # keyless batches the broker pays for per batch; docs/benchmarks.md has the measurement
    message_timeout_ms: int = 10_000  # librdkafka gives up on a message after this
    # 2: one Kafka message per admission call (OrdersAccepted); 1: one per order, for workers before version 2.
    event_version: Annotated[int, Meta(ge=1, le=2)] = 2
    # An order waits this long for others of its SKU before their one admit.lua call; 0: to the end
    # of the event-loop tick. Fewer, bigger calls for Redis, at up to this much more latency.
    admit_window_ms: Annotated[int, Meta(ge=0, le=50)] = 2  # the event loop's timers count whole ms
    relay_enabled: bool = True
    relay_interval_ms: int = 1000
    relay_stale_ms: int = 15_000  # republish outbox entries pending longer than this
    relay_batch: int = 200
    relay_discover_ms: int = 10_000  # rescan Redis for outbox streams this often; 0: own SKUs only
    db_timeout_ms: AtLeast1 = 250  # order-status lookup in PostgreSQL; past it the answer comes from Redis
    db_pool_max_size: AtLeast1 = 2  # connections per process for order-status lookups
    metrics_dir: str | None = None  # PROMETHEUS_MULTIPROC_DIR: metrics shared by every gate process
    # The HTTP server's limits, per process; gate/limits.py gives the reasons for each number.
    max_connections: int = 4096  # open connections, idle ones included (granian's backpressure); > max_inflight
    # For a request head, from the accept; also the keep-alive idle timeout.
    header_read_timeout_ms: Annotated[int, Meta(ge=100, le=60_000)] = 10_000
    # The body of POST /v1/orders, from its head: an admission slot is held while it is read, so a
    # body that never completes must not hold one for good (408 body_timeout; docs/http-api.md).
    body_timeout_ms: Annotated[int, Meta(ge=100, le=60_000)] = 5_000
    # Request line and headers (a connection's read buffer); 431 beyond. hyper refuses a smaller buffer.
    head_limit_bytes: Annotated[int, Meta(ge=8192)] = 16_384
    # Accepted by the kernel, not yet by a process (capped by net.core.somaxconn).
    listen_backlog: Annotated[int, Meta(ge=128)] = 4096
    # Problem `type` = this + "#" + code. The default is docs/problems.md as the gate itself serves
    # it (GET /problems), resolved against the request's URL; production points it at a docs site.
    problem_base_url: str = PROBLEM_BASE_URL
    otlp_endpoint: str = ""  # OpenTelemetry export over OTLP/HTTP (flashgate/otel.py); "": off
    kafka_security: KafkaSecurity = PLAINTEXT  # TLS/SASL: FLASHGATE_KAFKA_* (flashgate/kafka_client.py)

    def __post_init__(self) -> None:
        check(self)
        check_redis_url(self.redis_url)  # RedisUrlError, a ConfigError naming REDIS_URL
        if is_cluster(self.redis_url) and self.redis_wait_ms >= self.redis_timeout_ms:
            raise ConfigError(f"{_name('redis_wait_ms')} must be below {_name('redis_timeout_ms')}")
        # A relay must not republish while the first producer may still deliver the message.
        if self.relay_stale_ms <= self.message_timeout_ms:
            raise ConfigError(f"{_name('relay_stale_ms')} must exceed {_name('message_timeout_ms')}")
        if not self.problem_base_url or any(c in self.problem_base_url for c in '# \t\r\n"\\'):
            raise ConfigError(f"{_name('problem_base_url')} must be a URL without a fragment, spaces or quotes")
        otel.check_endpoint(self.otlp_endpoint)
        if self.kafka_compression not in COMPRESSIONS:
            raise ConfigError(f"{_name('kafka_compression')} must be one of {', '.join(COMPRESSIONS)}")
        # Every admission in flight holds a connection: at or below the bound the server would stop
        # accepting before the gate could shed with 503 `overloaded`, and buyers would wait unanswered.
        if self.max_connections <= self.max_inflight:
            raise ConfigError(f"{_name('max_connections')} must exceed {_name('max_inflight')}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GateSettings:
        """Read the environment (docs/configuration.md): ConfigError naming the variable, OSError for a key file."""
        e = os.environ if env is None else env
        return load(
            cls,
            e,
            given={
                "auth": AuthSettings.from_env(e),
                "kafka_security": KafkaSecurity.from_env(e),
                "relay_enabled": (field_value(e, cls, "relay_enabled") or "on").lower() != "off",
            },
        )


def _name(field: str) -> str:
    return variable(GateSettings, field)
