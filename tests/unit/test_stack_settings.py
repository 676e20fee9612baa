"""Stack settings precedence and validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ops.stack.errors import ServiceFailed, StackConfigError
from ops.stack.kafka_service import KafkaNode, cluster_id, node_names, server_properties
from ops.stack.service import Service
from ops.stack.settings import DEFAULT_PORTS, resolve
from ops.stack.stack import CLUSTER_STOP_TIMEOUT_S, Stack


def test_defaults(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, env={})
    assert s.redis_port == DEFAULT_PORTS["redis_port"]
    assert s.connection_env() == {
        "REDIS_URL": f"redis://127.0.0.1:{s.redis_port}/0",
        "DATABASE_URL": f"postgresql://flashgate@127.0.0.1:{s.postgres_port}/flashgate",
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{s.kafka_port}",
    }


def test_option_beats_env_beats_saved(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"redis_port": 1111, "postgres_port": 2222}))
    env = {"FLASHGATE_REDIS_PORT": "3333", "FLASHGATE_KAFKA_PORT": "4444"}
    s = resolve(str(tmp_path), {"redis_port": 5555}, env=env)
    assert (s.redis_port, s.postgres_port, s.kafka_port) == (5555, 2222, 4444)


def test_saved_settings_round_trip(tmp_path: Path) -> None:
    first = resolve(str(tmp_path), {}, free_ports=True, env={})
    first.save()
    assert resolve(str(tmp_path), {}, env={}) == first


def test_free_ports_are_distinct(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, free_ports=True, env={})
    ports = {s.redis_port, s.postgres_port, s.kafka_port, s.kafka_controller_port}
    assert len(ports) == 4
    assert not ports & set(DEFAULT_PORTS.values())


def test_state_dir_from_env(tmp_path: Path) -> None:
    assert resolve(None, {}, env={"FLASHGATE_STACK_DIR": str(tmp_path)}).state_dir == tmp_path.resolve()


@pytest.mark.parametrize(
    ("ports", "env", "message"),
    [
        ({"redis_port": 70000}, {}, "--redis-port 70000 is outside"),
        ({}, {"FLASHGATE_POSTGRES_PORT": "abc"}, "FLASHGATE_POSTGRES_PORT='abc' is not a port"),
        ({"redis_port": 7000, "kafka_port": 7000}, {}, "same port"),
    ],
)
def test_bad_ports(tmp_path: Path, ports: dict[str, int | None], env: dict[str, str], message: str) -> None:
    with pytest.raises(StackConfigError, match=message):
        resolve(str(tmp_path), ports, env=env)


def test_corrupt_stack_file(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text("{nope")
    with pytest.raises(StackConfigError, match="unreadable"):
        resolve(str(tmp_path), {}, env={})


def test_one_kafka_node_by_default(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, env={})
    assert (s.kafka_brokers, s.kafka_node_ports) == (1, ())
    assert node_names(1) == ["kafka"]


def test_cluster_nodes_are_two_ports_apart_by_default(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, env={}, kafka_brokers=3)
    assert [s.kafka_node(n) for n in (1, 2, 3)] == [(19092, 19093), (19094, 19095), (19096, 19097)]
    assert s.connection_env()["KAFKA_BOOTSTRAP"] == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert node_names(3) == ["kafka-1", "kafka-2", "kafka-3"]


def test_cluster_free_ports_are_distinct_and_saved(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, free_ports=True, env={}, kafka_brokers=3)
    ports = [s.redis_port, s.postgres_port, s.prometheus_port, *(p for n in (1, 2, 3) for p in s.kafka_node(n))]
    assert len(set(ports)) == len(ports) == 9
    s.save()
    again = resolve(str(tmp_path), {}, env={})  # later commands find the cluster without repeating the option
    assert again == s


@pytest.mark.parametrize("count", [0, 2, 4, 7])
def test_broker_counts_that_make_no_quorum(tmp_path: Path, count: int) -> None:
    with pytest.raises(StackConfigError, match=f"--kafka-brokers {count}: choose 1, 3, 5"):
        resolve(str(tmp_path), {}, env={}, kafka_brokers=count)


def test_a_state_folder_keeps_its_broker_count(tmp_path: Path) -> None:
    resolve(str(tmp_path), {}, env={}).save()  # a single-node stack
    with pytest.raises(StackConfigError, match=r"was made with 1 Kafka broker\(s\), not 3: run `flashgate stack down`"):
        resolve(str(tmp_path), {}, env={}, kafka_brokers=3)
    assert resolve(str(tmp_path), {}, env={}, kafka_brokers=1).kafka_brokers == 1


def test_cluster_ports_must_not_collide(tmp_path: Path) -> None:
    # Node 2 would take 7002, which the controller of node 1 already has.
    with pytest.raises(StackConfigError, match="same port"):
        resolve(str(tmp_path), {"kafka_port": 7000, "kafka_controller_port": 7002}, env={}, kafka_brokers=3)
    with pytest.raises(StackConfigError, match="outside 1-65535"):
        resolve(str(tmp_path), {"kafka_port": 65534, "kafka_controller_port": 65535}, env={}, kafka_brokers=3)


def test_fast_start_is_saved(tmp_path: Path) -> None:
    resolve(str(tmp_path), {}, env={}, kafka_fast_start=True).save()
    assert resolve(str(tmp_path), {}, env={}).kafka_fast_start


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_single_node_properties(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, env={})
    p = props(server_properties(s, 1, tmp_path / "data"))
    assert p["controller.quorum.voters"] == "1@127.0.0.1:19093"
    single = ("default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor")
    assert [p[k] for k in single] == ["1", "1", "1"]
    assert "leader.imbalance.check.interval.seconds" not in p


def test_cluster_node_properties(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, env={}, kafka_brokers=3)
    p = props(server_properties(s, 2, tmp_path / "data"))
    assert p["node.id"] == "2"
    assert p["process.roles"] == "broker,controller"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19094"
    replicated = ("default.replication.factor", "offsets.topic.replication.factor", "share.coordinator.state.topic")
    for key in replicated:
        assert p[key if key.endswith("factor") else key + ".replication.factor"] == "3", key
    assert (p["min.insync.replicas"], p["transaction.state.log.min.isr"]) == ("2", "2")
    assert p["unclean.leader.election.enable"] == "false"


def test_nodes_preparing_at_once_share_one_cluster_id(tmp_path: Path) -> None:
    path = tmp_path / "kafka-cluster.id"
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(lambda _: cluster_id(path), range(8)))
    assert len(ids) == 1
    assert not ids.pop().startswith("-")


def test_an_empty_cluster_id_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "kafka-cluster.id"
    path.write_text("")
    with pytest.raises(ServiceFailed, match=r"kafka-cluster.id is empty; remove it and the kafka data folders"):
        cluster_id(path)


def test_jvm_system_properties_of_a_node(tmp_path: Path) -> None:
    settings = resolve(str(tmp_path), {}, env={})
    assert KafkaNode(settings).system_properties == ()  # the stack passes none
    url = "http://127.0.0.1:1/jwks"
    node = KafkaNode(settings, system_properties={"org.apache.kafka.sasl.oauthbearer.allowed.urls": url, "a.b": "x=y"})
    assert node.system_properties == (("a.b", "x=y"), ("org.apache.kafka.sasl.oauthbearer.allowed.urls", url))
    for bad in ("", "a=b", "a b"):
        with pytest.raises(ValueError, match="kafka: not JVM system property names"):
            KafkaNode(settings, system_properties={bad: "x"})


def test_service_names_of_a_cluster(tmp_path: Path) -> None:
    stack = Stack(resolve(str(tmp_path), {}, env={}, kafka_brokers=3))
    assert stack.names == ["redis", "postgres", "kafka-1", "kafka-2", "kafka-3", "prometheus", "kafka"]
    assert [s.name for s in stack.select("kafka")] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [s.name for s in stack.select("kafka-2")] == ["kafka-2"]
    with pytest.raises(StackConfigError, match="unknown service 'kafka-4'; choose one of redis, postgres, kafka-1"):
        stack.select("kafka-4")
    single = Stack(resolve(str(tmp_path / "one"), {}, env={}))
    assert single.names == ["redis", "postgres", "kafka", "prometheus"]
    with pytest.raises(StackConfigError, match="unknown service 'kafka-1'"):
        single.select("kafka-1")


def test_a_whole_cluster_stops_with_the_short_grace(tmp_path: Path) -> None:
    """All nodes at once may leave one waiting for a quorum that is gone: it is killed after 10 s, not 30."""
    graces: dict[str, float | None] = {}

    def recorder(svc: Service) -> Callable[[float | None], None]:
        def stop(timeout_s: float | None = None) -> None:
            graces[svc.name] = timeout_s

        return stop

    cluster = Stack(resolve(str(tmp_path), {}, env={}, kafka_brokers=3))
    for svc in cluster.all_services.values():
        svc.stop = recorder(svc)  # type: ignore[method-assign,assignment]
    cluster.stop("kafka-2")
    assert graces == {"kafka-2": None}
    cluster.stop("kafka")
    assert graces == dict.fromkeys(["kafka-1", "kafka-2", "kafka-3"], CLUSTER_STOP_TIMEOUT_S)
    graces.clear()
    cluster.down()
    assert graces == {
        "redis": None, "postgres": None, "prometheus": None,
        **dict.fromkeys(["kafka-1", "kafka-2", "kafka-3"], CLUSTER_STOP_TIMEOUT_S),
    }  # fmt: skip

    single = Stack(resolve(str(tmp_path / "one"), {}, env={}))
    for svc in single.all_services.values():
        svc.stop = recorder(svc)  # type: ignore[method-assign,assignment]
    graces.clear()
    single.down()
    assert graces == dict.fromkeys(["redis", "postgres", "kafka", "prometheus"])
