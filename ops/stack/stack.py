"""The stack as a whole: start, stop and report on all services of one state folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ops.stack.errors import ServiceFailed, StackConfigError, StackError
from ops.stack.kafka_service import KafkaNode, admin_client
from ops.stack.postgres_service import PostgresService
from ops.stack.prometheus_service import PrometheusService
from ops.stack.redis_cluster import ensure_cluster, wait_ok
from ops.stack.redis_service import RedisClusterNode, RedisService
from ops.stack.roles import kafka_roles, read_redis_roles
from ops.stack.service import Service
from ops.stack.settings import StackSettings
from ops.topics.admin import ensure
from ops.topics.errors import TopicsError
from ops.topics.spec import stack_specs

KAFKA = "kafka"  # one node, or every node of the cluster when it has several
REDIS = "redis"  # one node, or every node of the Redis Cluster
# A cluster stopping as a whole: each broker waits for the controller quorum to approve its controlled
# shutdown, and a node whose approval was not in before the other controllers exited waits for good
# (Kafka's limit is 5 minutes; seen here: one node of three at `down`, the other two gone in 1 s). A
# graceful stop takes 2-3 s here; past this the node is SIGKILLed, which loses nothing the OS holds.
CLUSTER_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    port: int
    healthy: bool
    role: str = ""  # in a cluster: "primary 0-5460", "replica of redis-p1", "active controller"… (ops/stack/roles.py)

    @property
    def state(self) -> str:
        if self.pid is None:
            return "stopped"
        return "running" if self.healthy else "unhealthy"


class Stack:
    """All services of one state folder; every method is safe to repeat.

    Kafka is one service (`kafka`) or one per KRaft node (`kafka-1` … `kafka-N`); `kafka` then
    names the whole cluster, whose nodes start and stop together (a node alone cannot become
    ready without a quorum). Redis likewise is one service or six (`redis-p1` … `redis-r3`) with
    `redis` naming them all; a node started alone is waited on until it reports `cluster_state:ok`,
    the whole cluster until every node does with every slot served. Prometheus is optional: part of
    `up` and `status` once turned on (`with_prometheus`, saved), always stopped by `down`, and
    startable by name.
    """

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.kafka_nodes = [KafkaNode(settings, n) for n in range(1, settings.kafka_brokers + 1)]
        self.redis_nodes = [RedisClusterNode(settings, i) for i in range(len(settings.redis_cluster_ports))]
        redis: dict[str, Service] = {n.name: n for n in self.redis_nodes} or {REDIS: RedisService(settings)}
        self.redis_cluster_s: float | None = None  # how long `up` took to make or check the Redis Cluster
        self.all_services: dict[str, Service] = {
            **redis,
            "postgres": PostgresService(settings),
            **{node.name: node for node in self.kafka_nodes},
            "prometheus": PrometheusService(settings),
        }

    @property
    def names(self) -> list[str]:
        """Every name `start`, `stop` and `kill` accept."""
        group = [KAFKA] if len(self.kafka_nodes) > 1 else []
        group += [REDIS] if self.redis_nodes else []
        return [*self.all_services, *group]

    @property
    def services(self) -> dict[str, Service]:
        """The services `up` starts and `status` reports: the core ones, and Prometheus when on."""
        return {n: s for n, s in self.all_services.items() if n != "prometheus" or self.settings.with_prometheus}

    def select(self, name: str) -> list[Service]:
        """The services one name addresses: itself, or every Kafka node for `kafka` on a cluster."""
        if name == KAFKA and len(self.kafka_nodes) > 1:
            return list(self.kafka_nodes)
        if name == REDIS and self.redis_nodes:
            return list(self.redis_nodes)
        try:
            return [self.all_services[name]]
        except KeyError as e:
            raise StackConfigError(f"unknown service {name!r}; choose one of {', '.join(self.names)}") from e

    def start(self, name: str) -> None:
        """Start the named service(s) together and wait until each answers."""
        _each(self.select(name), lambda s: s.start())
        if name == KAFKA:
            self.ensure_topics()
        if name == REDIS and self.redis_nodes:
            ensure_cluster(self.redis_nodes)
        elif name.startswith("redis-"):
            wait_ok([n for n in self.redis_nodes if n.name == name], timeout_s=60, whole=False)

    def stop(self, name: str) -> None:
        whole_cluster = name == KAFKA and len(self.kafka_nodes) > 1
        _each(self.select(name), lambda s: s.stop(CLUSTER_STOP_TIMEOUT_S if whole_cluster else None))

    def kill(self, name: str) -> None:
        _each(self.select(name), lambda s: s.kill())

    def up(self) -> float:
        """Start every service in parallel, wait until all answer, apply the topic spec; return the seconds."""
        began = time.monotonic()
        for svc in self.services.values():  # fail before anything starts, not half-way
            svc.preflight()
        self.settings.save()
        _each(list(self.services.values()), lambda s: s.start())
        if self.redis_nodes:
            self.redis_cluster_s = ensure_cluster(self.redis_nodes)
        self.ensure_topics()
        return time.monotonic() - began

    def ensure_topics(self) -> None:
        """The pipeline's topics as `flashgate topics ensure` makes them, scaled to the broker count."""
        admin = admin_client(self.settings.kafka_bootstrap)  # must outlive its futures
        specs = stack_specs(self.settings.kafka_brokers, self.settings.orders_partitions)
        try:
            ensure(admin, specs, timeout_s=30).raise_refusals()
        except TopicsError as e:
            raise ServiceFailed(f"kafka topics: {e}") from e

    def down(self) -> None:
        """Stop every service gracefully; nothing of the stack keeps running afterwards."""
        cluster = self.kafka_nodes if len(self.kafka_nodes) > 1 else []
        _each(list(self.all_services.values()), lambda s: s.stop(CLUSTER_STOP_TIMEOUT_S if s in cluster else None))

    def status(self) -> list[ServiceStatus]:
        """Each service's pid, port and health, and its role when it is a node of a cluster."""
        roles = read_redis_roles(self.redis_nodes) if self.redis_nodes else {}
        if len(self.kafka_nodes) > 1:
            roles |= kafka_roles(self.kafka_nodes)
        result = []
        for name, svc in self.services.items():
            pid = svc.pid()
            healthy = pid is not None and svc.probe()
            result.append(ServiceStatus(name, pid, svc.port, healthy, roles.get(name, "")))
        return result


def _each(services: list[Service], action: Callable[[Service], None]) -> None:
    """Run `action` on every service at once; raise the first failure as a one-line StackError."""
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        errors = [f.exception() for f in [pool.submit(action, s) for s in services]]
    failed = [e for e in errors if e is not None]
    if failed:
        first = failed[0]
        if isinstance(first, StackError):
            raise first
        raise StackError(f"{type(first).__name__}: {first}") from first
