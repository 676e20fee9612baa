"""Kafka client config: TLS/SASL from FLASHGATE_KAFKA_* or a properties file reaches every client; bad ones refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flashgate.kafka_client import (
    OWNED_KEYS,
    PLAINTEXT,
    KafkaConfigError,
    KafkaSecurity,
    client_config,
    read_properties,
)
from flashgate.settings import ConfigError
from gate.handoff import producer_config
from gate.settings import GateSettings
from ops.monitor.settings import MonitorSettings
from reconcile.settings import ReconcileSettings
from worker.main import consumer_config, dlq_producer_config
from worker.settings import WorkerSettings

SCRAM = {
    "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "FLASHGATE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "FLASHGATE_KAFKA_SASL_USERNAME": "gate",
    "FLASHGATE_KAFKA_SASL_PASSWORD": "s3cret",
}
BASE = {"REDIS_URL": "redis://r", "DATABASE_URL": "postgresql://d", "KAFKA_BOOTSTRAP": "k1:9093,k2:9093"}


def test_no_settings_is_plaintext() -> None:
    assert KafkaSecurity.from_env({}) == PLAINTEXT
    assert client_config("k:1", PLAINTEXT) == {"bootstrap.servers": "k:1"}


def test_variables_map_to_librdkafka_properties() -> None:
    props = dict(KafkaSecurity.from_env(SCRAM).properties)
    assert props == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "gate",
        "sasl.password": "s3cret",
    }


def test_values_are_normalised_but_secrets_kept_as_given() -> None:
    env = {
        **SCRAM,
        "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext ",
        "FLASHGATE_KAFKA_SASL_MECHANISM": "plain",
        "FLASHGATE_KAFKA_SASL_PASSWORD": " pass word ",
    }
    props = dict(KafkaSecurity.from_env(env).properties)
    assert (props["security.protocol"], props["sasl.mechanism"]) == ("SASL_PLAINTEXT", "PLAIN")
    assert props["sasl.password"] == " pass word "


def test_properties_file_with_variables_winning(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        "# from the provider's console\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanisms=PLAIN\n"
        "sasl.username = file-user\n"
        "sasl.password=file=pass\n"
        "\n"
        "! a Java-style comment\n"
        "client.rack=eu-west-1a\n"
    )
    env = {"FLASHGATE_KAFKA_PROPERTIES_FILE": str(path), "FLASHGATE_KAFKA_SASL_USERNAME": "env-user"}
    props = dict(KafkaSecurity.from_env(env).properties)
    assert props == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "env-user",
        "sasl.password": "file=pass",  # split at the first '=' only
        "client.rack": "eu-west-1a",
    }


def test_oauthbearer_oidc_client_credentials() -> None:
    env = {
        "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FLASHGATE_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "FLASHGATE_KAFKA_OAUTHBEARER_TOKEN_ENDPOINT_URL": "https://idp.example/oauth2/token",
        "FLASHGATE_KAFKA_OAUTHBEARER_CLIENT_ID": "flashgate",
        "FLASHGATE_KAFKA_OAUTHBEARER_CLIENT_SECRET": "x",
        "FLASHGATE_KAFKA_OAUTHBEARER_SCOPE": "kafka",
    }
    props = dict(KafkaSecurity.from_env(env).properties)
    assert props["sasl.oauthbearer.method"] == "oidc"
    assert props["sasl.oauthbearer.token.endpoint.url"] == "https://idp.example/oauth2/token"
    assert props["sasl.oauthbearer.scope"] == "kafka"


def test_tls_files_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SSL", "FLASHGATE_KAFKA_SSL_CA_LOCATION": str(ca)}
    assert dict(KafkaSecurity.from_env(env).properties)["ssl.ca.location"] == str(ca)
    with pytest.raises(KafkaConfigError, match=r"ssl.ca.location: no file at .*missing.pem"):
        KafkaSecurity.from_env({**env, "FLASHGATE_KAFKA_SSL_CA_LOCATION": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLASHGATE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SECURITY_PROTOCOL='TLS': choose one of PLAINTEXT"),
        ({"FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_MECHANISM is not set for SASL_SSL"),
        ({**SCRAM, "FLASHGATE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "SASL_MECHANISM='GSSAPI' for SASL_SSL: choose"),
        ({**SCRAM, "FLASHGATE_KAFKA_SASL_PASSWORD": ""}, "SCRAM-SHA-512 needs FLASHGATE_KAFKA_SASL_PASSWORD$"),
        (
            {"FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "FLASHGATE_KAFKA_SASL_MECHANISM": "PLAIN"},
            "PLAIN needs FLASHGATE_KAFKA_SASL_USERNAME and FLASHGATE_KAFKA_SASL_PASSWORD",
        ),
        ({**SCRAM, "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SSL"}, "SASL settings need .*SASL_SSL .* not SSL"),
        ({"FLASHGATE_KAFKA_SASL_USERNAME": "u"}, "SASL settings need .* not PLAINTEXT"),
        (
            {**SCRAM, "FLASHGATE_KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "OAUTHBEARER needs FLASHGATE_KAFKA_OAUTHBEARER_TOKEN_ENDPOINT_URL, _CLIENT_ID and _CLIENT_SECRET",
        ),
        ({"FLASHGATE_KAFKA_SSL_ENDPOINT_IDENTIFICATION": "none"}, "ssl.* settings need .* not PLAINTEXT"),
        (
            {"FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SSL", "FLASHGATE_KAFKA_SSL_ENDPOINT_IDENTIFICATION": "off"},
            "SSL_ENDPOINT_IDENTIFICATION='off': choose https or none",
        ),
        (
            {"FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SSL", "FLASHGATE_KAFKA_SSL_KEY_LOCATION": "/k.pem"},
            "mutual TLS needs both",
        ),
    ],
)
def test_refused_combinations(env: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaConfigError, match=message):
        KafkaSecurity.from_env(env)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("enable.auto.commit=true", "enable.auto.commit is set by flashgate itself"),
        ("acks=1", "acks is set by flashgate itself"),
        ("bootstrap.servers=x:9092", "bootstrap.servers is set by flashgate itself"),
        (
            "sasl.jaas.config=org.apache...PlainLoginModule required;",
            "Java client's, not librdkafka's: use sasl.username",
        ),
        ("ssl.truststore.location=/t.jks", "Java client's.*ssl.ca.location"),
    ],
)
def test_file_may_not_set_owned_or_java_keys(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "client.properties"
    path.write_text(line + "\n")
    with pytest.raises(KafkaConfigError, match=message):
        KafkaSecurity.from_env({"FLASHGATE_KAFKA_PROPERTIES_FILE": str(path)})


def test_unreadable_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(KafkaConfigError, match=r"PROPERTIES_FILE: cannot read .*nope"):
        read_properties(tmp_path / "nope")
    path = tmp_path / "client.properties"
    path.write_text("security.protocol=SSL\njust words\n")
    with pytest.raises(KafkaConfigError, match=r"client.properties:2 is not `key=value`"):
        read_properties(path)


def test_errors_and_repr_never_show_a_secret() -> None:
    security = KafkaSecurity.from_env(SCRAM)
    assert "s3cret" not in repr(security)
    assert repr(security) == "KafkaSecurity(SASL_SSL/SCRAM-SHA-512, 4 properties)"
    settings = GateSettings.from_env({**BASE, **SCRAM, "FLASHGATE_GATE_AUTH": "off"})
    assert "s3cret" not in repr(settings)
    with pytest.raises(KafkaConfigError) as info:
        KafkaSecurity.from_env({**SCRAM, "FLASHGATE_KAFKA_SASL_USERNAME": ""})
    assert "s3cret" not in str(info.value)


def test_role_keys_must_be_owned() -> None:
    with pytest.raises(KafkaConfigError, match=r"client\.rack not in OWNED_KEYS"):
        client_config("k:1", PLAINTEXT, {"client.rack": "a"})


def _security_of(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k.startswith(("security.", "sasl."))}


def test_every_client_gets_the_security_settings() -> None:
    wanted = dict(KafkaSecurity.from_env(SCRAM).properties)
    env = {**BASE, **SCRAM}
    gate = GateSettings.from_env({**env, "FLASHGATE_GATE_AUTH": "off"})
    worker = WorkerSettings.from_env(env=env)
    monitor = MonitorSettings.from_env(env=env)
    reconcile = ReconcileSettings.from_env(env)
    assert gate.kafka_security == worker.kafka_security == monitor.kafka_security == reconcile.kafka_security
    produce = producer_config(gate.kafka_bootstrap, linger_ms=1, message_timeout_ms=1000, security=gate.kafka_security)
    configs = [produce, consumer_config(worker), dlq_producer_config(worker)]
    for config in configs:
        assert config["bootstrap.servers"] == "k1:9093,k2:9093"
        assert _security_of(config) == wanted
    # The role's own keys stay the role's: idempotence and manual commits whatever the settings say.
    assert (produce["enable.idempotence"], produce["acks"]) == (True, "all")
    assert consumer_config(worker)["enable.auto.commit"] is False


def test_role_configs_only_use_owned_keys() -> None:
    worker = WorkerSettings.from_env(env=BASE)
    produce = producer_config("k:1", linger_ms=1, message_timeout_ms=1000)
    for config in (produce, consumer_config(worker), dlq_producer_config(worker)):
        assert set(config) <= OWNED_KEYS


@pytest.mark.parametrize(
    ("read", "error"),
    [
        (lambda env: GateSettings.from_env({**env, "FLASHGATE_GATE_AUTH": "off"}), ConfigError),
        (lambda env: WorkerSettings.from_env(env=env), ConfigError),
        (lambda env: MonitorSettings.from_env(env=env), ConfigError),
        (ReconcileSettings.from_env, ConfigError),
    ],
)
def test_every_component_reports_a_bad_setting_as_its_config_error(read: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="SASL_MECHANISM is not set"):
        read({**BASE, "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})


class Captured(Exception):
    """Raised by a stand-in client constructor, carrying the config it was given."""


def _capture(config: dict[str, Any], **_: Any) -> None:
    raise Captured(config)


def test_monitor_and_reconciler_clients_get_the_security_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ops.monitor import lag
    from reconcile import backlog

    security = KafkaSecurity.from_env(SCRAM)
    wanted = dict(security.properties)
    monkeypatch.setattr(lag, "AdminClient", _capture)
    with pytest.raises(Captured) as admin:
        lag.GroupLag("k:1", group="g", topic="t", timeout_s=1, security=security)
    monkeypatch.setattr(backlog, "Consumer", _capture)
    with pytest.raises(Captured) as consumer:
        backlog.read_backlog("k:1", "t", "g", None, security=security)
    for captured in (admin, consumer):
        config = captured.value.args[0]
        assert _security_of(config) == wanted
        assert config["bootstrap.servers"] == "k:1"
