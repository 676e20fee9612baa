"""Apache Kafka 4.1 as KRaft nodes run from Maven Central jars (no tarball, no Docker).

One node by default; `--kafka-brokers 3` runs a static quorum of three, each node controller and
broker (`kafka-1` … `kafka-3`). Jars are fetched once by Maven into a cache keyed by the pom's
hash; each node's storage is formatted once, all with one cluster id; readiness is an admin-client
metadata call that lists this node as a broker, since the port opens before the broker serves
requests (and, in a cluster, before the quorum has unfenced it). Topics are not made here: the
stack applies the topic spec (`ops/topics`) once every node is up.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from ops.stack import process
from ops.stack.errors import MissingDependency, ServiceFailed
from ops.stack.ports import port_in_use
from ops.stack.service import Service, require_binary
from ops.stack.settings import StackSettings

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


def cluster_id(path: Path) -> str:
    """The cluster id kept in `path`, made on first use; safe when several nodes prepare at once."""
    try:
        with open(path, "x") as f:  # exclusive create: the first node to get here writes it
            f.write(new_cluster_id())
    except FileExistsError:
        pass
    for _ in range(50):  # a racing node may have created the file and not yet written it
        text = path.read_text().strip()
        if text:
            return text
        time.sleep(0.01)
    raise ServiceFailed(f"kafka: {path} is empty; remove it and the kafka data folders")


def node_names(brokers: int) -> list[str]:
    """Service names of the KRaft nodes: `kafka` alone, or `kafka-1` … `kafka-N`."""
    return ["kafka"] if brokers == 1 else [f"kafka-{n}" for n in range(1, brokers + 1)]


def server_properties(settings: StackSettings, node_id: int, data_dir: Path) -> str:
    """server.properties of node `node_id`: combined controller+broker, loopback, static quorum.

    Replication follows the broker count: one node keeps everything at 1; a cluster replicates
    internal topics to 3 nodes with 2 in sync, refuses unclean leader elections, and moves
    leadership back to preferred replicas within seconds of a node's return.
    """
    n = settings.kafka_brokers
    port, cport = settings.kafka_node(node_id)
    voters = ",".join(f"{i}@127.0.0.1:{settings.kafka_node(i)[1]}" for i in range(1, n + 1))
    rf = min(n, 3)
    isr = min(rf, 2) if n > 1 else 1
    lines = [
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={voters}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        f"default.replication.factor={rf}",
        f"min.insync.replicas={isr}",
        "unclean.leader.election.enable=false",
        f"offsets.topic.replication.factor={rf}",
        "offsets.topic.num.partitions=1",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={isr}",
        "transaction.state.log.num.partitions=1",
        f"share.coordinator.state.topic.replication.factor={rf}",
        f"share.coordinator.state.topic.min.isr={isr}",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
    ]
    if n > 1:
        # Kafka's default looks every 300 s: a restarted node would stay without leaderships that long.
        lines.append("leader.imbalance.check.interval.seconds=5")
    return "\n".join([*lines, ""])


class KafkaNode(Service):
    """One KRaft node (controller + broker) in `<state_dir>/<name>/`; `node_id` counts from 1.

    `system_properties` are extra `-Dname=value` for the broker's JVM (not for the storage tool),
    for settings Kafka reads only from there, e.g. `org.apache.kafka.sasl.oauthbearer.allowed.urls`
    (empty by default since Kafka 4.0, so a broker fetches no JWKS until it lists the URL). The
    stack passes none; a name that is empty or holds `=` or whitespace is a ValueError.
    """

    start_timeout_s = 90.0
    stop_timeout_s = 30.0

    def __init__(
        self, settings: StackSettings, node_id: int = 1, *, system_properties: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(settings)
        self.node_id = node_id
        self.name = node_names(settings.kafka_brokers)[node_id - 1]
        props = dict(system_properties or {})
        bad = [k for k in props if not k or "=" in k or any(c.isspace() for c in k)]
        if bad:
            raise ValueError(f"{self.name}: not JVM system property names: {', '.join(map(repr, bad))}")
        self.system_properties: tuple[tuple[str, str], ...] = tuple(sorted(props.items()))

    @property
    def port(self) -> int:
        return self.settings.kafka_node(self.node_id)[0]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def cluster_id_path(self) -> Path:
        if self.settings.kafka_brokers == 1:
            return self.home / "cluster.id"
        return self.settings.state_dir / "kafka-cluster.id"  # one id for every node

    def ports(self) -> list[tuple[str, int, str]]:
        port, cport = self.settings.kafka_node(self.node_id)
        if self.node_id == 1:
            return [self.port_hint("kafka_port", port), self.port_hint("kafka_controller_port", cport)]
        hint = "nodes 2+ use ports 2 apart from --kafka-port/--kafka-controller-port, or --free-ports on a new folder"
        return [(self.name, port, hint), (self.name, cport, hint)]

    def check_installed(self) -> None:
        require_binary("java", "openjdk-17-jre-headless")
        ensure_jars()

    def prepare(self) -> None:
        self.config_path.write_text(server_properties(self.settings, self.node_id, self.data_dir))
        if (self.data_dir / "meta.properties").exists():
            return
        done = subprocess.run(
            [*self._java(heap_mb=256, fast=True), "kafka.tools.StorageTool", "format",
             "-t", cluster_id(self.cluster_id_path), "-c", str(self.config_path), "--ignore-formatted"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()
            raise ServiceFailed(f"{self.name}: formatting storage failed: {tail[-1] if tail else done.returncode}")

    def launch(self) -> None:
        argv = [
            *self._java(heap_mb=self.settings.kafka_heap_mb, fast=self.settings.kafka_fast_start),
            "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.home}", *(f"-D{k}={v}" for k, v in self.system_properties),
            "kafka.Kafka", str(self.config_path),
        ]  # fmt: skip
        process.spawn(argv, log_path=self.log_path, pid_path=self.pid_path, cwd=self.home)

    def _java(self, *, heap_mb: int, fast: bool) -> list[str]:
        # C1 only: a node was ready after 6.5-7.2 CPU-s against 13.0-13.2 with C2 (measured twice each,
        # load ~12); StorageTool 2.4 against 4.1 CPU-s. C2's faster code is for the long-running broker.
        return [
            require_binary("java", "openjdk-17-jre-headless"),
            f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", *(["-XX:TieredStopAtLevel=1"] if fast else []),
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp", f"{ensure_jars()}/*",
        ]  # fmt: skip

    def admin(self) -> AdminClient:
        """An admin client of this node alone (it may still find the others through metadata)."""
        return admin_client(self.bootstrap)

    def probe(self) -> bool:
        if not port_in_use(self.port):
            return False
        try:
            return self.node_id in self.admin().list_topics(timeout=2).brokers
        except KafkaException:
            return False


def admin_client(bootstrap: str) -> AdminClient:
    """A plaintext admin client of the local stack, quiet while nodes boot."""
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000}, logger=_quiet_logger())
