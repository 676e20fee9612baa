"""The clients' security settings on real listeners: SASL (PLAIN, SCRAM-SHA-256, OAUTHBEARER) and mutual TLS.

A broker of this module's own (one KRaft node from the launcher, C1-only JVM) with two more
listeners on loopback next to the PLAINTEXT one the admin uses to create the SCRAM user:
SASL_PLAINTEXT, and SSL with client certificates required, its certificates from a throwaway CA
(tests/support/tlscerts.py). OAUTHBEARER tokens come from an OpenID provider of this module's own
(tests/support/oidc.py: client credentials, RS256 JWTs) and the broker checks each against the provider's
JWKS, audience and issuer. Every client is configured only through FLASHGATE_KAFKA_* (or a
properties file) as a process would read them: the gate's producer, the worker's consumer, the
monitor's lag reader, the reconciler's backlog reader and `flashgate topics ensure`. A wrong
password, a wrong client secret, a token the broker must not trust or an unknown CA must fail in
one line, not hang.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from flashgate.kafka_client import KafkaSecurity
from gate.handoff import producer_config
from ops.monitor.lag import GroupLag
from ops.stack.kafka_service import KafkaNode
from ops.stack.ports import free_port
from ops.stack.settings import resolve
from ops.topics.cli import topics_group
from reconcile.backlog import read_backlog
from tests.conftest import IN_CI
from tests.support.oidc import OidcProvider
from tests.support.tlscerts import Certs, make_certs
from worker.main import consumer_config
from worker.settings import WorkerSettings

PLAIN_USER, PLAIN_PASSWORD = "gate", "plain-secret"
SCRAM_USER, SCRAM_PASSWORD = "worker", "scram-secret"
OAUTH_CLIENT, OAUTH_SECRET = "flashgate-gate", "oidc-secret"
STRANGER_CLIENT, STRANGER_SECRET = "billing", "billing-secret"  # the provider's client, but not for Kafka
FORGER_CLIENT, FORGER_SECRET = "forger", "forger-secret"  # its tokens are signed by a key the JWKS lacks
AUDIENCE = "kafka"


class SecureNode(KafkaNode):
    """A KRaft node with a SASL_PLAINTEXT listener (PLAIN users in its JAAS line, SCRAM users made later,
    OAUTHBEARER tokens checked against the provider's keys) and an SSL listener that requires a client
    certificate, as well as its PLAINTEXT one."""

    def __init__(self, home: Path, certs: Certs, oidc: OidcProvider) -> None:
        settings = resolve(str(home), {}, free_ports=True, env={}, kafka_fast_start=True)
        # Kafka 4.x fetches no OAuth URL it is not told to allow, and reads the list only from the JVM.
        allowed = {"org.apache.kafka.sasl.oauthbearer.allowed.urls": oidc.jwks_url}
        super().__init__(dataclasses.replace(settings, kafka_heap_mb=256), system_properties=allowed)
        self.sasl_port = free_port()
        self.ssl_port = free_port()
        self.certs = certs
        self.oidc = oidc

    def prepare(self) -> None:
        super().prepare()
        port, cport = self.settings.kafka_node(1)
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        oauth = "org.apache.kafka.common.security.oauthbearer"
        extra = f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},SSL://127.0.0.1:{self.ssl_port}"
        with self.config_path.open("a") as f:  # later keys win in a Java properties file
            f.write(
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport},{extra}\n"
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},{extra}\n"
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
                "SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL\n"
                "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,OAUTHBEARER\n"
                f"listener.name.sasl_plaintext.plain.sasl.jaas.config={plain} required "
                f'user_{PLAIN_USER}="{PLAIN_PASSWORD}";\n'
                f"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={scram} required;\n"
                f"listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config={oauth}.OAuthBearerLoginModule required;\n"
                "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class="
                f"{oauth}.OAuthBearerValidatorCallbackHandler\n"
                # Kafka 4.1's default validator (DefaultJwtValidator, built without a key resolver) falls
                # back to ClientJwtValidator: claims only, no signature, audience or issuer check.
                f"sasl.oauthbearer.jwt.validator.class={oauth}.BrokerJwtValidator\n"
                f"sasl.oauthbearer.jwks.endpoint.url={self.oidc.jwks_url}\n"
                f"sasl.oauthbearer.expected.audience={AUDIENCE}\n"
                f"sasl.oauthbearer.expected.issuer={self.oidc.issuer}\n"
                "listener.name.ssl.ssl.keystore.type=PEM\n"
                f"listener.name.ssl.ssl.keystore.location={self.certs.server}\n"
                "listener.name.ssl.ssl.truststore.type=PEM\n"
                f"listener.name.ssl.ssl.truststore.location={self.certs.ca}\n"
                "listener.name.ssl.ssl.client.auth=required\n"
            )


@pytest.fixture(scope="module")
def oidc() -> Iterator[OidcProvider]:
    clients = {OAUTH_CLIENT: OAUTH_SECRET, STRANGER_CLIENT: STRANGER_SECRET, FORGER_CLIENT: FORGER_SECRET}
    audiences = {STRANGER_CLIENT: "billing-api"}
    provider = OidcProvider(clients, audience=AUDIENCE, audiences=audiences, forged=[FORGER_CLIENT])
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, oidc: OidcProvider) -> Iterator[SecureNode]:
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    node = SecureNode(tmp_path_factory.mktemp("secure-kafka"), certs, oidc)
    try:
        node.start()
    except Exception as e:
        node.kill()
        if IN_CI:
            pytest.fail(f"the secured broker did not start: {e}", pytrace=False)
        pytest.skip(f"the secured broker did not start: {e}")
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    upsert = UserScramCredentialUpsertion(SCRAM_USER, info, SCRAM_PASSWORD.encode())
    admin.alter_user_scram_credentials([upsert])[SCRAM_USER].result(timeout=30)
    yield node
    node.kill()


def sasl_env(node: SecureNode, mechanism: str, user: str, password: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{node.sasl_port}",
        "DATABASE_URL": "postgresql://unused",
        "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "FLASHGATE_KAFKA_SASL_MECHANISM": mechanism,
        "FLASHGATE_KAFKA_SASL_USERNAME": user,
        "FLASHGATE_KAFKA_SASL_PASSWORD": password,
    }


def ensure_topics(env: dict[str, str], topic: str, timeout_s: float = 10) -> tuple[int, str]:
    """`flashgate topics ensure` in process; a refused login fails at the deadline, so those use a short one."""
    args = ["ensure", "--replication-factor", "1", "--partitions", "2", "--topic", topic, "--dlq-topic", f"{topic}.dlq"]
    result = CliRunner().invoke(topics_group, [*args, "--timeout-s", str(timeout_s)], env=env)
    return result.exit_code, result.output.strip()


def round_trip(env: dict[str, str], topic: str) -> None:
    """topics ensure, the gate's producer, the worker's consumer, the monitor and the reconciler, all over SASL."""
    code, out = ensure_topics(env, topic)
    assert code == 0, out
    settings = WorkerSettings.from_env({"topic": topic, "group": f"{topic}.writers"}, env=env)
    security = settings.kafka_security
    assert security == KafkaSecurity.from_env(env)

    producer = Producer(
        producer_config(settings.kafka_bootstrap, linger_ms=1, message_timeout_ms=20_000, security=security)
    )
    for n in range(3):
        producer.produce(topic, value=f"m{n}".encode())
    assert producer.flush(30) == 0

    consumer = Consumer(consumer_config(settings))
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 3 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg.value() or b"")
        assert sorted(got) == [b"m0", b"m1", b"m2"]
    finally:
        consumer.close()  # nothing committed: the group's lag is all three messages

    lag = GroupLag(settings.kafka_bootstrap, group=settings.group, topic=topic, timeout_s=10, security=security)
    assert sum(lag.read().values()) == 3
    # The reconciler's reader skips what is not an order; reading through SASL is the point here.
    backlog = read_backlog(settings.kafka_bootstrap, topic, settings.group, None, timeout_s=30, security=security)
    assert backlog == {}


def test_sasl_plain(broker: SecureNode) -> None:
    round_trip(sasl_env(broker, "PLAIN", PLAIN_USER, PLAIN_PASSWORD), f"sasl-plain-{uuid.uuid4().hex[:8]}")


def test_sasl_scram_sha_256(broker: SecureNode) -> None:
    env = sasl_env(broker, "SCRAM-SHA-256", SCRAM_USER, SCRAM_PASSWORD)
    round_trip(env, f"sasl-scram-{uuid.uuid4().hex[:8]}")


def test_sasl_from_a_properties_file(broker: SecureNode, tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        f"security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-256\n"
        f"sasl.username={SCRAM_USER}\nsasl.password={SCRAM_PASSWORD}\n"
    )
    env = {"KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.sasl_port}", "FLASHGATE_KAFKA_PROPERTIES_FILE": str(path)}
    code, out = ensure_topics(env, f"sasl-file-{uuid.uuid4().hex[:8]}")
    assert code == 0, out


def refused_in_one_line(env: dict[str, str], topic: str, reason: str, *, secret: str | None = None) -> None:
    """`topics ensure` with `env` exits 2 with one line naming `reason`, and never shows `secret`."""
    code, out = ensure_topics(env, topic, timeout_s=3)
    assert code == 2
    assert out.startswith("topics: kafka: cannot read metadata:"), out
    assert reason in out, out
    assert secret is None or secret not in out
    assert len(out.splitlines()) == 1


def test_wrong_password_fails_in_one_line(broker: SecureNode) -> None:
    env = sasl_env(broker, "SCRAM-SHA-256", SCRAM_USER, "not-the-password")
    refused_in_one_line(env, f"sasl-bad-{uuid.uuid4().hex[:8]}", "Authentication failed", secret="not-the-password")


def oauth_env(node: SecureNode, client_id: str, secret: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{node.sasl_port}",
        "DATABASE_URL": "postgresql://unused",
        "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "FLASHGATE_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "FLASHGATE_KAFKA_OAUTHBEARER_TOKEN_ENDPOINT_URL": node.oidc.token_url,
        "FLASHGATE_KAFKA_OAUTHBEARER_CLIENT_ID": client_id,
        "FLASHGATE_KAFKA_OAUTHBEARER_CLIENT_SECRET": secret,
        "FLASHGATE_KAFKA_OAUTHBEARER_SCOPE": "kafka.produce kafka.consume",
    }


def test_sasl_oauthbearer_oidc(broker: SecureNode) -> None:
    """Tokens from the provider's client-credentials endpoint, checked by the broker against its JWKS."""
    round_trip(oauth_env(broker, OAUTH_CLIENT, OAUTH_SECRET), f"sasl-oauth-{uuid.uuid4().hex[:8]}")
    assert broker.oidc.requests["token"] >= 1
    assert broker.oidc.requests["jwks"] >= 1  # at the broker's start; the refusals below show it checks with them


def test_wrong_client_secret_fails_in_one_line(broker: SecureNode) -> None:
    env = oauth_env(broker, OAUTH_CLIENT, "not-the-secret")
    reason = 'Failed to acquire SASL OAUTHBEARER token: {"error": "invalid_client"}'
    refused_in_one_line(env, f"sasl-oauth-bad-{uuid.uuid4().hex[:8]}", reason, secret="not-the-secret")


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [(STRANGER_CLIENT, STRANGER_SECRET), (FORGER_CLIENT, FORGER_SECRET)],
    ids=["issued-for-another-audience", "signed-by-a-key-not-in-the-jwks"],
)
def test_a_token_the_broker_must_not_trust_is_refused_in_one_line(
    broker: SecureNode, client_id: str, secret: str
) -> None:
    """The provider hands the token out; the broker's check of it (not the provider's) refuses it."""
    issued = broker.oidc.requests["token"]
    topic = f"sasl-oauth-{client_id}-{uuid.uuid4().hex[:8]}"
    refused_in_one_line(
        oauth_env(broker, client_id, secret), topic, 'SASL authentication error: {"status":"invalid_token"}'
    )
    assert broker.oidc.requests["token"] > issued


def tls_env(node: SecureNode, ca: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{node.ssl_port}",
        "DATABASE_URL": "postgresql://unused",
        "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SSL",
        "FLASHGATE_KAFKA_SSL_CA_LOCATION": str(ca),
        "FLASHGATE_KAFKA_SSL_CERTIFICATE_LOCATION": str(node.certs.client_cert),
        "FLASHGATE_KAFKA_SSL_KEY_LOCATION": str(node.certs.client_key),
    }


def test_mutual_tls(broker: SecureNode) -> None:
    """The server's name checked against its certificate (librdkafka's default), the client's by the broker."""
    round_trip(tls_env(broker, broker.certs.ca), f"tls-{uuid.uuid4().hex[:8]}")


def test_unknown_ca_fails_in_one_line(broker: SecureNode) -> None:
    refused_in_one_line(
        tls_env(broker, broker.certs.stranger_ca), f"tls-bad-{uuid.uuid4().hex[:8]}", "certificate verify failed"
    )


def test_plaintext_client_on_the_sasl_listener_is_refused(broker: SecureNode) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{broker.sasl_port}", "log_level": 0})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    assert os.environ.get("FLASHGATE_KAFKA_SASL_PASSWORD") is None  # nothing leaked into this process
