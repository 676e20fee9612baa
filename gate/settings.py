"""The gate's settings: one frozen object per process, built from the environment in main()/the app factory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flashgate.fingerprint import DEFAULT_IDEM_TTL_S
from flashgate.kafka_client import PLAINTEXT, KafkaConfigError, KafkaSecurity
from flashgate.names import ORDERS_TOPIC
from flashgate.redis_url import RedisUrlError, is_cluster
from flashgate.redis_url import check as check_redis_url

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
# GateSettings fields read from FLASHGATE_<NAME> as integers, by the ending of their names.
_INT_SUFFIXES = ("_ms", "_s", "_bytes", "_failures", "inflight", "_batch", "_max", "_connections", "_backlog")

PROBLEM_BASE_URL = "/problems"  # docs/problems.md as the gate serves it
_NO_MAX = 2**63
# Bounds of the numeric settings that have them (inclusive).
_RANGES: dict[str, tuple[int, int]] = {
    "idem_ttl_s": (1, _NO_MAX),
    "redis_timeout_ms": (50, 1000),
    "redis_wait_ms": (0, 1000),
    "db_timeout_ms": (1, _NO_MAX),
    "db_pool_max": (1, _NO_MAX),
    "max_inflight": (1, _NO_MAX),
    "body_limit_bytes": (64, _NO_MAX),
    "header_read_timeout_ms": (100, 60_000),
    "body_timeout_ms": (100, 60_000),
    "head_limit_bytes": (8192, _NO_MAX),  # hyper refuses a smaller read buffer
    "listen_backlog": (128, _NO_MAX),
}


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Buyer identity: a JWT (`sub`) verified with HS256 or RS256, or, only when `disabled`, X-User-Id."""

    disabled: bool = False
    hs256_secret: str | None = None
    rs256_public_key: str | None = None
    audience: str | None = None
    issuer: str | None = None

    def __post_init__(self) -> None:
        if not self.disabled and not (self.hs256_secret or self.rs256_public_key):
            raise SettingsError(
                "auth: set FLASHGATE_JWT_HS256_SECRET or FLASHGATE_JWT_RS256_PUBLIC_KEY, "
                "or FLASHGATE_AUTH=off explicitly"
            )


@dataclass(frozen=True, slots=True)
class GateSettings:
    """Everything one gate process needs; units are in the names."""

    redis_url: str
    kafka_bootstrap: str
    auth: AuthSettings
    database_url: str | None = None  # optional: `GET /v1/orders/{id}` reports `persisted` from PostgreSQL
    topic: str = ORDERS_TOPIC
    delivery_budget_ms: int = 2000  # wait this long for Kafka before answering `queued`
    idem_ttl_s: int = DEFAULT_IDEM_TTL_S
    redis_timeout_ms: int = 250  # per pipeline; a busy event loop eats into it too
    # Redis Cluster only: a script's round trip ends with WAIT 1 <this> (a replica has it); 0: no WAIT.
    redis_wait_ms: int = 100
    breaker_failures: int = 3
    breaker_cooldown_ms: int = 500
    max_inflight: int = 2048  # admissions in flight per process before 503
    soldout_cache_ms: int = 500
    body_limit_bytes: int = 4096
    kafka_compression: str = "lz4"  # librdkafka compression.type: none, gzip, snappy, lz4, zstd
    linger_ms: int = 10  # keyless batches the broker pays for per batch; see README (Gate) for the measurement
    message_timeout_ms: int = 10_000  # librdkafka gives up on a message after this
    relay_enabled: bool = True
    relay_interval_ms: int = 1000
    relay_stale_ms: int = 15_000  # republish outbox entries pending longer than this
    relay_batch: int = 200
    relay_discover_ms: int = 10_000  # rescan Redis for outbox streams this often; 0: own SKUs only
    db_timeout_ms: int = 250  # order-status lookup in PostgreSQL; past it the answer comes from Redis
    db_pool_max: int = 2  # connections per process for order-status lookups
    metrics_dir: str | None = None  # PROMETHEUS_MULTIPROC_DIR: metrics shared by every gate process
    # The HTTP server's limits, per process; gate/limits.py gives the reasons for each number.
    max_connections: int = 4096  # open connections, idle ones included (granian's backpressure); > max_inflight
    header_read_timeout_ms: int = 10_000  # for a request head, from the accept; also the keep-alive idle timeout
    # The body of POST /v1/orders, from its head: an admission slot is held while it is read, so a
    # body that never completes must not hold one for good (408 body_timeout; README, Gate).
    body_timeout_ms: int = 5_000
    head_limit_bytes: int = 16_384  # request line and headers (a connection's read buffer); 431 beyond
    listen_backlog: int = 4096  # accepted by the kernel, not yet by a process (capped by net.core.somaxconn)
    # Problem `type` = this + "#" + code. The default is docs/problems.md as the gate itself serves
    # it (GET /problems), resolved against the request's URL; production points it at a docs site.
    problem_base_url: str = PROBLEM_BASE_URL
    kafka_security: KafkaSecurity = PLAINTEXT  # TLS/SASL: FLASHGATE_KAFKA_* (flashgate/kafka_client.py)

    def __post_init__(self) -> None:
        for name, (low, high) in _RANGES.items():
            if not low <= getattr(self, name) <= high:
                bound = f"at least {low}" if high == _NO_MAX else f"within {low}..{high}"
                raise SettingsError(f"FLASHGATE_{name.upper()} must be {bound}")
        if is_cluster(self.redis_url) and self.redis_wait_ms >= self.redis_timeout_ms:
            raise SettingsError("FLASHGATE_REDIS_WAIT_MS must be below FLASHGATE_REDIS_TIMEOUT_MS")
        # A relay must not republish while the first producer may still deliver the message.
        if self.relay_stale_ms <= self.message_timeout_ms:
            raise SettingsError("FLASHGATE_RELAY_STALE_MS must exceed FLASHGATE_MESSAGE_TIMEOUT_MS")
        if not self.problem_base_url or any(c in self.problem_base_url for c in '# \t\r\n"\\'):
            raise SettingsError("FLASHGATE_PROBLEM_BASE_URL must be a URL without a fragment, spaces or quotes")
        if self.kafka_compression not in COMPRESSIONS:
            raise SettingsError(f"FLASHGATE_KAFKA_COMPRESSION must be one of {', '.join(COMPRESSIONS)}")
        # Every admission in flight holds a connection: at or below the bound the server would stop
        # accepting before the gate could shed with 503 `overloaded`, and buyers would wait unanswered.
        if self.max_connections <= self.max_inflight:
            raise SettingsError("FLASHGATE_MAX_CONNECTIONS must exceed FLASHGATE_MAX_INFLIGHT")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GateSettings:
        """Read REDIS_URL, KAFKA_BOOTSTRAP and FLASHGATE_* (see README, sections Gate and Kafka security)."""
        e = os.environ if env is None else env

        def num(name: str, default: int) -> int:
            raw = e.get(f"FLASHGATE_{name}")
            try:
                return default if raw is None else int(raw)
            except ValueError as err:
                raise SettingsError(f"FLASHGATE_{name} must be an integer, not {raw!r}") from err

        key = e.get("FLASHGATE_JWT_RS256_PUBLIC_KEY")
        if key and not key.lstrip().startswith("-----"):
            key = Path(key).read_text()
        auth = AuthSettings(
            disabled=e.get("FLASHGATE_AUTH", "jwt").lower() == "off",
            hs256_secret=e.get("FLASHGATE_JWT_HS256_SECRET") or None,
            rs256_public_key=key or None,
            audience=e.get("FLASHGATE_JWT_AUDIENCE") or None,
            issuer=e.get("FLASHGATE_JWT_ISSUER") or None,
        )
        try:
            redis_url, kafka = e["REDIS_URL"], e["KAFKA_BOOTSTRAP"]
        except KeyError as err:
            raise SettingsError(f"{err.args[0]} is not set") from err
        try:
            check_redis_url(redis_url)
        except RedisUrlError as err:
            raise SettingsError(str(err)) from err
        try:
            security = KafkaSecurity.from_env(e)
        except KafkaConfigError as err:
            raise SettingsError(str(err)) from err
        d = cls.__dataclass_fields__
        return cls(
            redis_url=redis_url,
            kafka_bootstrap=kafka,
            auth=auth,
            database_url=e.get("DATABASE_URL") or None,
            topic=e.get("FLASHGATE_TOPIC", ORDERS_TOPIC),
            kafka_compression=e.get("FLASHGATE_KAFKA_COMPRESSION", "lz4"),
            relay_enabled=e.get("FLASHGATE_RELAY", "on").lower() != "off",
            metrics_dir=e.get("PROMETHEUS_MULTIPROC_DIR") or None,
            problem_base_url=e.get("FLASHGATE_PROBLEM_BASE_URL", PROBLEM_BASE_URL),
            kafka_security=security,
            **{
                name: num(name.upper(), f.default)  # type: ignore[arg-type]
                for name, f in d.items()
                if name.endswith(_INT_SUFFIXES)
            },
        )
