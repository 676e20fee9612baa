"""Stack settings and names of a Redis Cluster stack (`stack up --redis-cluster`), without starting it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from flashgate.redis_url import parse_cluster
from ops.stack import redis_cluster
from ops.stack.errors import PortTaken, ServiceFailed, StackConfigError
from ops.stack.ports import free_port
from ops.stack.redis_cluster import healthy
from ops.stack.redis_service import RedisClusterNode
from ops.stack.settings import REDIS_CLUSTER_NODES, resolve
from ops.stack.stack import Stack


def test_one_redis_by_default(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, env={})
    assert (s.redis_cluster, s.redis_cluster_ports) == (False, ())
    assert s.redis_url == f"redis://127.0.0.1:{s.redis_port}/0"


def test_cluster_ports_by_default_and_the_url_lists_every_node(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {"redis_port": 7000}, env={}, redis_cluster=True)
    assert s.redis_cluster_ports == tuple((7000 + i, 7100 + i) for i in range(6))
    seeds = parse_cluster(s.connection_env()["REDIS_URL"]).seeds
    assert seeds == tuple(("127.0.0.1", 7000 + i) for i in range(6))


def test_cluster_free_ports_are_distinct_and_saved(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, free_ports=True, env={}, redis_cluster=True, kafka_brokers=3)
    ports = [s.postgres_port, s.prometheus_port, *(p for n in (1, 2, 3) for p in s.kafka_node(n))]
    ports += [p for pair in s.redis_cluster_ports for p in pair]
    assert s.redis_cluster_ports[0][0] == s.redis_port
    assert len(set(ports)) == len(ports) == 2 + 6 + 12
    s.save()
    assert resolve(str(tmp_path), {}, env={}) == s  # later commands find the cluster without the option


def test_a_state_folder_keeps_its_redis(tmp_path: Path) -> None:
    resolve(str(tmp_path), {}, env={}).save()  # a one-Redis stack
    with pytest.raises(StackConfigError, match="was made with one Redis, not a Redis Cluster: run `flashgate stack"):
        resolve(str(tmp_path), {}, env={}, redis_cluster=True)


def test_cluster_ports_outside_the_range_or_colliding(tmp_path: Path) -> None:
    with pytest.raises(StackConfigError, match="redis cluster ports 65500/65600 are outside 1-65535"):
        resolve(str(tmp_path), {"redis_port": 65500}, env={}, redis_cluster=True)
    with pytest.raises(StackConfigError, match="same port"):  # p2 would take PostgreSQL's port
        resolve(str(tmp_path), {"redis_port": 7000, "postgres_port": 7001}, env={}, redis_cluster=True)


def test_node_names_and_groups(tmp_path: Path) -> None:
    stack = Stack(resolve(str(tmp_path), {}, env={}, redis_cluster=True))
    assert stack.names == [*REDIS_CLUSTER_NODES, "postgres", "kafka", "prometheus", "redis"]
    assert [s.name for s in stack.select("redis")] == list(REDIS_CLUSTER_NODES)
    assert [s.name for s in stack.select("redis-r2")] == ["redis-r2"]
    with pytest.raises(StackConfigError, match="unknown service 'redis-p4'"):
        stack.select("redis-p4")


def test_node_config_is_a_cluster_node_with_its_bus_port(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {"redis_port": 7000}, env={}, redis_cluster=True)
    node = RedisClusterNode(s, 4)
    lines = node.config_lines()
    assert (node.name, node.port, node.bus_port) == ("redis-r2", 7004, 7104)
    for line in ("cluster-enabled yes", "cluster-port 7104", "appendfsync always", "cluster-require-full-coverage no"):
        assert line in lines
    assert [p[1] for p in node.ports()] == [7004, 7104]


def test_healthy_needs_every_slot_and_node() -> None:
    ok = {"cluster_state": "ok", "cluster_slots_ok": "16384", "cluster_known_nodes": "6"}
    assert healthy(ok, 6)
    assert not healthy({**ok, "cluster_slots_ok": "10923"}, 6)  # a shard down, full coverage not required
    assert not healthy({**ok, "cluster_known_nodes": "5"}, 6)
    assert not healthy({}, 6)


def test_a_half_made_cluster_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = Stack(resolve(str(tmp_path), {}, env={}, redis_cluster=True)).redis_nodes
    known = iter(["6", "6", "1", "1", "1", "1"])  # p1, p2 joined, the rest never were (a crash mid-create)
    monkeypatch.setattr(redis_cluster, "cluster_info", lambda node: {"cluster_known_nodes": next(known)})
    with pytest.raises(ServiceFailed, match=r"nodes know \[6, 6, 1, 1, 1, 1\] nodes each, not 6: a half-made cluster"):
        redis_cluster.ensure_cluster(nodes)


def test_a_cluster_not_ok_in_time_names_the_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = Stack(resolve(str(tmp_path), {}, env={}, redis_cluster=True)).redis_nodes
    monkeypatch.setattr(redis_cluster, "cluster_info", lambda node: {"cluster_state": "fail"})
    with pytest.raises(ServiceFailed, match=r"redis cluster not ok within 0 s: \{'redis-p1': 'fail'"):
        redis_cluster.wait_ok(nodes, timeout_s=0.2)


def test_redis_cli_failing_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ServiceFailed, match=r"redis cluster: redis-cli --cluster create failed: .*"):
        redis_cluster._redis_cli("--cluster", "create", f"127.0.0.1:{free_port()}", "--cluster-yes")


def test_a_taken_bus_port_is_named(tmp_path: Path) -> None:
    node = Stack(resolve(str(tmp_path), {}, free_ports=True, env={}, redis_cluster=True)).redis_nodes[3]
    with socket.socket() as held:
        held.bind(("127.0.0.1", node.bus_port))
        held.listen()
        with pytest.raises(PortTaken, match=rf"redis-r1: port {node.bus_port} is already in use .* --free-ports"):
            node.preflight()
