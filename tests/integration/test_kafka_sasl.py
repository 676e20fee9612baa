"""The clients' security settings on a real SASL listener: PLAIN and SCRAM-SHA-256 over SASL_PLAINTEXT.

A broker of this module's own (one KRaft node from the launcher, C1-only JVM) with a second
listener, SASL_PLAINTEXT on loopback, next to the PLAINTEXT one the admin uses to create the SCRAM
user. Every client is configured only through FLASHGATE_KAFKA_* as a process would read them:
the gate's producer, the worker's consumer, the monitor's lag reader, the reconciler's backlog
reader and `flashgate topics ensure`. A wrong password must fail in one line, not hang.
TLS and OAUTHBEARER need a CA and an identity provider; their config building is unit-tested.
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
from tests.conftest import IN_CI
from worker.main import consumer_config
from worker.reconcile.backlog import read_backlog
from worker.settings import WorkerSettings

PLAIN_USER, PLAIN_PASSWORD = "gate", "plain-secret"
SCRAM_USER, SCRAM_PASSWORD = "worker", "scram-secret"


class SaslNode(KafkaNode):
    """A KRaft node with a SASL_PLAINTEXT listener on `sasl_port` as well (PLAIN users in its JAAS line)."""

    def __init__(self, home: Path, sasl_port: int) -> None:
        settings = resolve(str(home), {}, free_ports=True, env={}, kafka_fast_start=True)
        super().__init__(dataclasses.replace(settings, kafka_heap_mb=256))
        self.sasl_port = sasl_port

    def prepare(self) -> None:
        super().prepare()
        port, cport = self.settings.kafka_node(1)
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        with self.config_path.open("a") as f:  # later keys win in a Java properties file
            f.write(
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport},"
                f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}\n"
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}\n"
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT\n"
                "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256\n"
                f"listener.name.sasl_plaintext.plain.sasl.jaas.config={plain} required "
                f'user_{PLAIN_USER}="{PLAIN_PASSWORD}";\n'
                f"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={scram} required;\n"
            )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslNode]:
    node = SaslNode(tmp_path_factory.mktemp("sasl-kafka"), free_port())
    try:
        node.start()
    except Exception as e:
        node.kill()
        if IN_CI:
            pytest.fail(f"the SASL broker did not start: {e}", pytrace=False)
        pytest.skip(f"the SASL broker did not start: {e}")
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    upsert = UserScramCredentialUpsertion(SCRAM_USER, info, SCRAM_PASSWORD.encode())
    admin.alter_user_scram_credentials([upsert])[SCRAM_USER].result(timeout=30)
    yield node
    node.kill()


def sasl_env(node: SaslNode, mechanism: str, user: str, password: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{node.sasl_port}",
        "DATABASE_URL": "postgresql://unused",
        "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "FLASHGATE_KAFKA_SASL_MECHANISM": mechanism,
        "FLASHGATE_KAFKA_SASL_USERNAME": user,
        "FLASHGATE_KAFKA_SASL_PASSWORD": password,
    }


def ensure_topics(env: dict[str, str], topic: str) -> tuple[int, str]:
    args = ["ensure", "--replication-factor", "1", "--partitions", "2", "--topic", topic, "--dlq-topic", f"{topic}.dlq"]
    result = CliRunner().invoke(topics_group, [*args, "--timeout-s", "10"], env=env)
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


def test_sasl_plain(broker: SaslNode) -> None:
    round_trip(sasl_env(broker, "PLAIN", PLAIN_USER, PLAIN_PASSWORD), f"sasl-plain-{uuid.uuid4().hex[:8]}")


def test_sasl_scram_sha_256(broker: SaslNode) -> None:
    env = sasl_env(broker, "SCRAM-SHA-256", SCRAM_USER, SCRAM_PASSWORD)
    round_trip(env, f"sasl-scram-{uuid.uuid4().hex[:8]}")


def test_sasl_from_a_properties_file(broker: SaslNode, tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        f"security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-256\n"
        f"sasl.username={SCRAM_USER}\nsasl.password={SCRAM_PASSWORD}\n"
    )
    env = {"KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.sasl_port}", "FLASHGATE_KAFKA_PROPERTIES_FILE": str(path)}
    code, out = ensure_topics(env, f"sasl-file-{uuid.uuid4().hex[:8]}")
    assert code == 0, out


def test_wrong_password_fails_in_one_line(broker: SaslNode) -> None:
    env = sasl_env(broker, "SCRAM-SHA-256", SCRAM_USER, "not-the-password")
    code, out = ensure_topics(env, f"sasl-bad-{uuid.uuid4().hex[:8]}")
    assert code == 2
    assert out.startswith("topics: kafka: cannot read metadata:"), out
    assert "Authentication failed" in out, out
    assert "not-the-password" not in out
    assert len(out.splitlines()) == 1


def test_plaintext_client_on_the_sasl_listener_is_refused(broker: SaslNode) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{broker.sasl_port}", "log_level": 0})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    assert os.environ.get("FLASHGATE_KAFKA_SASL_PASSWORD") is None  # nothing leaked into this process
