"""Apache Kafka 4.1 as a single-node KRaft broker run from Maven Central jars (no tarball, no Docker).

Jars are fetched once by Maven into a cache keyed by the pom's hash; storage is formatted once
per state folder; readiness is an admin-client metadata call, since the port opens before the
broker serves requests. Topics are created explicitly (`orders` with several partitions, the DLQ).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flashgate.names import DLQ_TOPIC, ORDERS_TOPIC
from ops.stack import process
from ops.stack.errors import MissingDependency, ServiceFailed
from ops.stack.ports import port_in_use
from ops.stack.service import Service, require_binary

KAFKA_DIR = Path(__file__).resolve().parent.parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J = KAFKA_DIR / "log4j2.properties"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"


def _quiet_logger() -> logging.Logger:
    # librdkafka reports every refused connection while the broker boots; readiness polling
    # expects those, so they go nowhere instead of to stderr.
    log = logging.getLogger("flashgate.stack.kafka.client")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def jar_dir() -> Path:
    """Where the broker's jars are cached: `FLASHGATE_KAFKA_LIB`, else per pom hash under ~/.cache."""
    override = os.environ.get("FLASHGATE_KAFKA_LIB")
    if override:
        return Path(override)
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "flashgate" / f"kafka-{digest}" / "lib"


def ensure_jars() -> Path:
    """Fetch the broker jars with Maven unless already cached; return the folder."""
    lib = jar_dir()
    if (lib / ".complete").exists():
        return lib
    mvn = require_binary("mvn", "maven")
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=lib.parent, prefix="lib-"))
    done = subprocess.run(
        [mvn, "-B", "-q", "-f", str(POM), MAVEN_DEPENDENCY_PLUGIN, "-DincludeScope=runtime",
         f"-DoutputDirectory={staging}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = (done.stdout + done.stderr).strip().splitlines()
        raise MissingDependency(f"kafka: fetching jars with Maven failed: {tail[-1] if tail else done.returncode}")
    (staging / ".complete").touch()
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib


def new_cluster_id() -> str:
    """A Kafka cluster id (url-safe base64 of a random UUID), never starting with '-' as Kafka requires."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class KafkaService(Service):
    name = "kafka"
    port_setting = "kafka_port"
    start_timeout_s = 90.0
    stop_timeout_s = 30.0

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    def ports(self) -> list[tuple[str, int]]:
        return [("kafka_port", self.port), ("kafka_controller_port", self.settings.kafka_controller_port)]

    def check_installed(self) -> None:
        require_binary("java", "openjdk-17-jre-headless")
        ensure_jars()

    def prepare(self) -> None:
        cport = self.settings.kafka_controller_port
        self.config_path.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{cport}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{cport}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=1",
                    "default.replication.factor=1",
                    "min.insync.replicas=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        if (self.data_dir / "meta.properties").exists():
            return
        cid_path = self.home / "cluster.id"
        if not cid_path.exists():
            cid_path.write_text(new_cluster_id())
        done = subprocess.run(
            [*self._java(heap_mb=256), "kafka.tools.StorageTool", "format", "-t", cid_path.read_text().strip(),
             "-c", str(self.config_path), "--ignore-formatted"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()
            raise ServiceFailed(f"kafka: formatting storage failed: {tail[-1] if tail else done.returncode}")

    def launch(self) -> None:
        argv = [
            *self._java(heap_mb=self.settings.kafka_heap_mb),
            "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.home}", "kafka.Kafka", str(self.config_path),
        ]  # fmt: skip
        process.spawn(argv, log_path=self.log_path, pid_path=self.pid_path, cwd=self.home)

    def _java(self, *, heap_mb: int) -> list[str]:
        return [
            require_binary("java", "openjdk-17-jre-headless"),
            f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m",
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp", f"{ensure_jars()}/*",
        ]  # fmt: skip

    def admin(self) -> AdminClient:
        return AdminClient(
            {"bootstrap.servers": self.settings.kafka_bootstrap, "socket.timeout.ms": 2000}, logger=_quiet_logger()
        )

    def probe(self) -> bool:
        if not port_in_use(self.port):
            return False
        try:
            return bool(self.admin().list_topics(timeout=2).brokers)
        except KafkaException:
            return False

    def after_ready(self) -> None:
        wanted = [
            NewTopic(ORDERS_TOPIC, num_partitions=self.settings.orders_partitions, replication_factor=1),
            NewTopic(DLQ_TOPIC, num_partitions=1, replication_factor=1),
        ]
        admin = self.admin()  # must outlive the futures, or librdkafka cancels them
        futures = admin.create_topics(wanted, operation_timeout=30, request_timeout=30)
        for topic, future in futures.items():
            try:
                future.result(timeout=35)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ServiceFailed(f"kafka: creating topic {topic} failed: {e.args[0].str()}") from e
