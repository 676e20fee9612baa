"""Kafka client settings every flashgate process shares: the brokers, TLS and SASL, in one place.

`client_config(bootstrap, security, role)` builds the librdkafka config of every client: the
gate's producer (and its relay), the worker's consumer and DLQ producer, the reconciler's backlog
reader, and the admin clients of `flashgate monitor` and `flashgate topics`. Each client adds only
its role's keys (acks, group.id, timeouts); those keys are OWNED_KEYS, which the user's settings
may not set, so no file can turn off idempotence or auto-commit behind the code's back.

Security comes from the environment (`KafkaSecurity.from_env`), variables winning over the file:

| variable (FLASHGATE_KAFKA_…)      | librdkafka property                                  |
|-----------------------------------|------------------------------------------------------|
| PROPERTIES_FILE                   | `key=value` lines, any librdkafka property not owned |
| SECURITY_PROTOCOL                 | security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL |
| SASL_MECHANISM                    | sasl.mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER |
| SASL_USERNAME, SASL_PASSWORD      | sasl.username, sasl.password (PLAIN, SCRAM)          |
| SSL_CA_LOCATION                   | ssl.ca.location (PEM; default: the system CA store)  |
| SSL_CERTIFICATE_LOCATION, SSL_KEY_LOCATION, SSL_KEY_PASSWORD | mutual TLS            |
| SSL_ENDPOINT_IDENTIFICATION       | ssl.endpoint.identification.algorithm: https, none   |
| OAUTHBEARER_TOKEN_ENDPOINT_URL, _CLIENT_ID, _CLIENT_SECRET, _SCOPE, _EXTENSIONS | OIDC client credentials |

Validation is pure and happens once, when a process reads its settings; a bad combination is a
`KafkaConfigError` whose message names the variable or key, never a secret's value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flashgate.settings import ConfigError

ENV_PREFIX = "FLASHGATE_KAFKA_"
PROPERTIES_FILE_ENV = ENV_PREFIX + "PROPERTIES_FILE"

# FLASHGATE_KAFKA_<suffix> → librdkafka property.
ENV_PROPERTIES: Mapping[str, str] = {
    "SECURITY_PROTOCOL": "security.protocol",
    "SASL_MECHANISM": "sasl.mechanism",
    "SASL_USERNAME": "sasl.username",
    "SASL_PASSWORD": "sasl.password",
    "SSL_CA_LOCATION": "ssl.ca.location",
    "SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "SSL_KEY_LOCATION": "ssl.key.location",
    "SSL_KEY_PASSWORD": "ssl.key.password",
    "SSL_ENDPOINT_IDENTIFICATION": "ssl.endpoint.identification.algorithm",
    "OAUTHBEARER_TOKEN_ENDPOINT_URL": "sasl.oauthbearer.token.endpoint.url",
    "OAUTHBEARER_CLIENT_ID": "sasl.oauthbearer.client.id",
    "OAUTHBEARER_CLIENT_SECRET": "sasl.oauthbearer.client.secret",
    "OAUTHBEARER_SCOPE": "sasl.oauthbearer.scope",
    "OAUTHBEARER_EXTENSIONS": "sasl.oauthbearer.extensions",
}
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
# Keys some flashgate client sets itself, because correctness or a FLASHGATE_* setting depends on them.
OWNED_KEYS = frozenset(
    {
        "bootstrap.servers", "client.id", "acks", "enable.idempotence", "transactional.id", "compression.type",
        "linger.ms", "message.timeout.ms", "group.id", "enable.auto.commit", "enable.auto.offset.store",
        "auto.offset.reset", "partition.assignment.strategy", "isolation.level", "fetch.min.bytes",
        "fetch.wait.max.ms", "max.poll.interval.ms", "session.timeout.ms", "heartbeat.interval.ms",
        "socket.timeout.ms", "logger", "error_cb", "on_delivery", "log_level",
    }
)  # fmt: skip
# Settings of the Java client that librdkafka does not read: say what to use instead.
JAVA_ONLY = {
    "sasl.jaas.config": "use sasl.username and sasl.password",
    "ssl.truststore.location": "give the CA as PEM in ssl.ca.location",
    "ssl.truststore.password": "give the CA as PEM in ssl.ca.location",
    "ssl.truststore.type": "give the CA as PEM in ssl.ca.location",
    "ssl.keystore.location": "give ssl.certificate.location and ssl.key.location (PEM)",
    "ssl.keystore.password": "use ssl.key.password",
    "ssl.keystore.type": "give ssl.certificate.location and ssl.key.location (PEM)",
    "sasl.login.callback.handler.class": "use the FLASHGATE_KAFKA_OAUTHBEARER_* settings",
}
_FILE_KEYS = ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location")
_VARIABLE = {key: ENV_PREFIX + suffix for suffix, key in ENV_PROPERTIES.items()}


class KafkaConfigError(ConfigError):
    """Kafka client settings that cannot work; the message names the variable or property."""


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """The librdkafka properties every client gets besides its bootstrap servers (empty: plaintext)."""

    properties: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSecurity:
        """Read FLASHGATE_KAFKA_PROPERTIES_FILE, then the FLASHGATE_KAFKA_* variables over it; validate."""
        e = os.environ if env is None else env
        merged: dict[str, str] = {}
        path = e.get(PROPERTIES_FILE_ENV)
        if path:
            merged.update(read_properties(Path(path)))
        for suffix, key in ENV_PROPERTIES.items():
            value = e.get(ENV_PREFIX + suffix)
            if value:
                merged[key] = value
        return cls.of(merged)

    @classmethod
    def of(cls, properties: Mapping[str, str]) -> KafkaSecurity:
        """Validated security properties, normalised: `sasl.mechanisms` → `sasl.mechanism`, enum values
        upper-case, and OIDC chosen when a token endpoint is given."""
        # Values as given: a password may begin or end with a space (the file's lines are stripped).
        props = {("sasl.mechanism" if k == "sasl.mechanisms" else k): v for k, v in properties.items()}
        for key in ("security.protocol", "sasl.mechanism"):
            if key in props:
                props[key] = props[key].strip().upper()
        if "sasl.oauthbearer.token.endpoint.url" in props:
            props.setdefault("sasl.oauthbearer.method", "oidc")
        check(props)
        return cls(tuple(sorted(props.items())))

    def __repr__(self) -> str:  # settings objects get logged: never show a password
        return f"KafkaSecurity({self.describe()}, {len(self.properties)} properties)"

    @property
    def protocol(self) -> str:
        return dict(self.properties).get("security.protocol", "PLAINTEXT").upper()

    def describe(self) -> str:
        """One line for logs: protocol and mechanism, never a secret."""
        props = dict(self.properties)
        mechanism = props.get("sasl.mechanism")
        return self.protocol + (f"/{mechanism.upper()}" if mechanism else "")


PLAINTEXT = KafkaSecurity()  # no TLS, no SASL: the local stack


def client_config(bootstrap: str, security: KafkaSecurity, role: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config of one client: the brokers, the shared security properties, then the role's own keys.

    Every `role` key must be in OWNED_KEYS, so no user setting can have been overridden by it
    (a programming error otherwise: KafkaConfigError).
    """
    own = dict(role or {})
    strays = sorted(set(own) - OWNED_KEYS)
    if strays:
        raise KafkaConfigError(f"client_config: {', '.join(strays)} not in OWNED_KEYS (add them there)")
    return {"bootstrap.servers": bootstrap, **dict(security.properties), **own}


def read_properties(path: Path) -> dict[str, str]:
    """`key=value` lines of a librdkafka properties file; blank lines and `#`/`!` comments skipped."""
    try:
        text = path.read_text()
    except OSError as e:
        raise KafkaConfigError(f"{PROPERTIES_FILE_ENV}: cannot read {path}: {e.strerror or e}") from e
    props: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise KafkaConfigError(f"{PROPERTIES_FILE_ENV}: {path}:{number} is not `key=value`")
        props[key.strip()] = value.strip()
    return props


def check(props: Mapping[str, str]) -> None:
    """Raise KafkaConfigError unless `props` can authenticate as configured (pure apart from file checks)."""
    for key in props:
        if key in OWNED_KEYS:
            raise KafkaConfigError(f"Kafka property {key} is set by flashgate itself; remove it from the settings")
        if key in JAVA_ONLY:
            raise KafkaConfigError(f"Kafka property {key} is the Java client's, not librdkafka's: {JAVA_ONLY[key]}")
    protocol = _check_protocol(props)
    _check_ssl(protocol, props)


def _check_protocol(props: Mapping[str, str]) -> str:
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise KafkaConfigError(f"{ENV_PREFIX}SECURITY_PROTOCOL={protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    mechanism = props.get("sasl.mechanism", "").upper()
    if protocol.startswith("SASL_"):
        _check_sasl(protocol, mechanism, props)
    elif mechanism or any(k.startswith("sasl.") for k in props):
        raise KafkaConfigError(
            f"SASL settings need {ENV_PREFIX}SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT), not {protocol}"
        )
    return protocol


def _check_ssl(protocol: str, props: Mapping[str, str]) -> None:
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and any(k.startswith("ssl.") for k in props):
        raise KafkaConfigError(f"ssl.* settings need {ENV_PREFIX}SECURITY_PROTOCOL=SSL or SASL_SSL, not {protocol}")
    endpoint = props.get("ssl.endpoint.identification.algorithm", "https")
    if endpoint not in ("https", "none"):
        raise KafkaConfigError(f"{ENV_PREFIX}SSL_ENDPOINT_IDENTIFICATION={endpoint!r}: choose https or none")
    if ("ssl.certificate.location" in props) != ("ssl.key.location" in props):
        raise KafkaConfigError(f"mutual TLS needs both {ENV_PREFIX}SSL_CERTIFICATE_LOCATION and _SSL_KEY_LOCATION")
    for key in _FILE_KEYS:
        if key in props and not Path(props[key]).is_file():
            raise KafkaConfigError(f"Kafka property {key}: no file at {props[key]}")


def _check_sasl(protocol: str, mechanism: str, props: Mapping[str, str]) -> None:
    if mechanism not in MECHANISMS:
        given = f"={mechanism!r}" if mechanism else " is not set"
        choices = ", ".join(MECHANISMS)
        raise KafkaConfigError(f"{ENV_PREFIX}SASL_MECHANISM{given} for {protocol}: choose one of {choices}")
    if mechanism == "OAUTHBEARER":
        oidc = ("sasl.oauthbearer.token.endpoint.url", "sasl.oauthbearer.client.id", "sasl.oauthbearer.client.secret")
        unsecured = "sasl.oauthbearer.config" in props  # librdkafka's unsecured JWT: test brokers only
        if not unsecured and not all(props.get(k) for k in oidc):
            raise KafkaConfigError(
                f"OAUTHBEARER needs {ENV_PREFIX}OAUTHBEARER_TOKEN_ENDPOINT_URL, _CLIENT_ID and _CLIENT_SECRET"
            )
        if not unsecured and props.get("sasl.oauthbearer.method", "oidc").lower() != "oidc":
            raise KafkaConfigError("OAUTHBEARER with a token endpoint needs sasl.oauthbearer.method=oidc")
        return
    missing = [k for k in ("sasl.username", "sasl.password") if not props.get(k)]
    if missing:
        raise KafkaConfigError(f"SASL {mechanism} needs {' and '.join(_VARIABLE[k] for k in missing)}")
