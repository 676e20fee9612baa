"""Stack settings: state folder and ports, from options, the environment and the saved stack file.

Precedence, highest first: explicit option, `FLASHGATE_*` environment variable, the ports saved
in `<state_dir>/stack.json` by the first `up`, then the defaults (or free ports when asked).
The saved file is what lets `status`, `env` and `down` find a stack started with other ports.

Kafka runs one node (the default) or a KRaft cluster (`--kafka-brokers 3`). Node 1 listens on
`kafka_port`/`kafka_controller_port`; nodes 2..N on `kafka_node_ports`, picked free with
`--free-ports`, else 2 above the previous node's (19094/19095, 19096/19097 by default). The
broker count is fixed when the state folder is first used: its storage is formatted for it.

Redis runs one node (the default) or a Redis Cluster (`--redis-cluster`): 3 primaries and 3
replicas, `redis-p1` on `redis_port`, every node with a cluster bus port of its own
(`redis_cluster_ports`: (client, bus) of p1..p3, r1..r3), picked free with `--free-ports`, else
`redis_port + i` and `redis_port + 100 + i`. Like the broker count, it is fixed for the folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ops.stack.errors import StackConfigError
from ops.stack.ports import free_port

DEFAULT_STATE_DIR = ".stack"
STACK_FILE = "stack.json"

# Off the well-known ports so a system Redis/PostgreSQL/Kafka on this host never collides.
DEFAULT_PORTS: Mapping[str, int] = {
    "redis_port": 16379,
    "postgres_port": 15432,
    "kafka_port": 19092,
    "kafka_controller_port": 19093,
    "prometheus_port": 19090,
}
PORT_ENV: Mapping[str, str] = {
    "redis_port": "FLASHGATE_REDIS_PORT",
    "postgres_port": "FLASHGATE_POSTGRES_PORT",
    "kafka_port": "FLASHGATE_KAFKA_PORT",
    "kafka_controller_port": "FLASHGATE_KAFKA_CONTROLLER_PORT",
    "prometheus_port": "FLASHGATE_PROMETHEUS_PORT",
}
PORT_OPTION: Mapping[str, str] = {
    "redis_port": "--redis-port",
    "postgres_port": "--postgres-port",
    "kafka_port": "--kafka-port",
    "kafka_controller_port": "--kafka-controller-port",
    "prometheus_port": "--prometheus-port",
}
# What the optional Prometheus scrapes and how (`stack up --with-prometheus`): ports of processes
# the stack does not run (gate, worker, monitor), the scrape/evaluation interval, and, for tests
# and demos only, one `for:` duration replacing every alert's own (0 keeps the rules' values).
PROMETHEUS_DEFAULTS: Mapping[str, int] = {
    "gate_port": 8000,
    "worker_metrics_port": 9101,
    "monitor_port": 9102,
    "prometheus_interval_s": 15,
    "prometheus_alert_for_s": 0,
}
# A KRaft quorum of N voters survives (N - 1) // 2 failures: an even count adds a node, no safety.
KAFKA_BROKER_COUNTS = (1, 3, 5)
# Redis Cluster nodes, in the order of `redis_cluster_ports`: the primaries as created, then their replicas.
REDIS_CLUSTER_NODES = ("redis-p1", "redis-p2", "redis-p3", "redis-r1", "redis-r2", "redis-r3")


@dataclass(frozen=True)
class StackSettings:
    """Where the stack lives and which loopback ports its services use."""

    state_dir: Path
    redis_port: int
    postgres_port: int
    kafka_port: int
    kafka_controller_port: int
    prometheus_port: int = DEFAULT_PORTS["prometheus_port"]
    with_prometheus: bool = False
    gate_port: int = PROMETHEUS_DEFAULTS["gate_port"]
    worker_metrics_port: int = PROMETHEUS_DEFAULTS["worker_metrics_port"]
    monitor_port: int = PROMETHEUS_DEFAULTS["monitor_port"]
    prometheus_interval_s: int = PROMETHEUS_DEFAULTS["prometheus_interval_s"]
    prometheus_alert_for_s: int = PROMETHEUS_DEFAULTS["prometheus_alert_for_s"]
    orders_partitions: int = 6
    redis_appendfsync: str = "always"
    kafka_heap_mb: int = 512
    kafka_brokers: int = 1
    kafka_node_ports: tuple[tuple[int, int], ...] = ()  # (broker, controller) of nodes 2..N
    # Test stacks: JVMs with the C1 compiler only, about half the CPU to start, less throughput after.
    kafka_fast_start: bool = False
    redis_cluster: bool = False
    redis_cluster_ports: tuple[tuple[int, int], ...] = ()  # (client, bus) per REDIS_CLUSTER_NODES

    def kafka_node(self, node_id: int) -> tuple[int, int]:
        """(broker port, controller port) of KRaft node `node_id` (1-based)."""
        if node_id == 1:
            return self.kafka_port, self.kafka_controller_port
        return self.kafka_node_ports[node_id - 2]

    @property
    def redis_url(self) -> str:
        """`redis://` of the one node, or `redis+cluster://` listing every cluster node as a seed."""
        if self.redis_cluster:
            return "redis+cluster://" + ",".join(f"127.0.0.1:{client}" for client, _ in self.redis_cluster_ports)
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def database_url(self) -> str:
        return f"postgresql://flashgate@127.0.0.1:{self.postgres_port}/flashgate"

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker, so a client finds the cluster while any one node is down."""
        return ",".join(f"127.0.0.1:{self.kafka_node(n)[0]}" for n in range(1, self.kafka_brokers + 1))

    def connection_env(self) -> dict[str, str]:
        """The variables every flashgate process reads to find the services."""
        return {
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
        }

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        body = {k: v for k, v in dataclasses.asdict(self).items() if k != "state_dir"}
        (self.state_dir / STACK_FILE).write_text(json.dumps(body, indent=2) + "\n")


def resolve(
    state_dir: str | None,
    ports: Mapping[str, int | None],
    *,
    free_ports: bool = False,
    env: Mapping[str, str] | None = None,
    prometheus: Mapping[str, int | None] | None = None,
    with_prometheus: bool = False,
    kafka_brokers: int | None = None,
    kafka_fast_start: bool = False,
    redis_cluster: bool = False,
) -> StackSettings:
    """Build settings by precedence; `free_ports` picks unused ports for anything not given.

    `prometheus`: PROMETHEUS_DEFAULTS keys given as options (None: saved, else default);
    `with_prometheus` turns the optional Prometheus on (it stays on in the saved settings);
    `kafka_brokers`: KRaft nodes (None: saved, else 1); a state folder keeps its first count;
    `kafka_fast_start` turns the quick-starting JVMs on (saved, like `with_prometheus`);
    `redis_cluster` asks for a Redis Cluster; a state folder keeps its first choice.
    """
    env = os.environ if env is None else env
    root = Path(state_dir or env.get("FLASHGATE_STACK_DIR") or DEFAULT_STATE_DIR).resolve()
    saved = _load_saved(root)
    chosen: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        value = ports.get(name) or _env_port(env, name) or _saved_port(saved, name)
        if value is None:
            value = free_port(exclude=set(chosen.values())) if free_ports else default
        chosen[name] = _check_port(name, value)
    brokers = _kafka_brokers(kafka_brokers, saved, root)
    node_ports = _kafka_node_ports(brokers, chosen, saved, free_ports=free_ports)
    cluster = _redis_cluster(redis_cluster, saved, root)
    used = {*chosen.values(), *(p for pair in node_ports for p in pair)}
    redis_ports = _redis_cluster_ports(cluster, chosen["redis_port"], used, saved, free_ports=free_ports)
    taken = [*chosen.values(), *(p for pair in node_ports for p in pair)]
    taken += [*(p for pair in redis_ports[1:] for p in pair), *(pair[1] for pair in redis_ports[:1])]
    if len(set(taken)) != len(taken):
        raise StackConfigError(
            f"two services were given the same port: {chosen}, kafka nodes 2+: {list(node_ports)}, "
            f"redis cluster nodes: {list(redis_ports)}"
        )
    return StackSettings(
        state_dir=root,
        redis_port=chosen["redis_port"],
        postgres_port=chosen["postgres_port"],
        kafka_port=chosen["kafka_port"],
        kafka_controller_port=chosen["kafka_controller_port"],
        prometheus_port=chosen["prometheus_port"],
        with_prometheus=with_prometheus or saved.get("with_prometheus") is True,
        **_prometheus_settings(prometheus or {}, saved),
        orders_partitions=int(str(saved.get("orders_partitions", StackSettings.orders_partitions))),
        redis_appendfsync=str(saved.get("redis_appendfsync", StackSettings.redis_appendfsync)),
        kafka_heap_mb=int(str(saved.get("kafka_heap_mb", StackSettings.kafka_heap_mb))),
        kafka_brokers=brokers,
        kafka_node_ports=node_ports,
        kafka_fast_start=kafka_fast_start or saved.get("kafka_fast_start") is True,
        redis_cluster=cluster,
        redis_cluster_ports=redis_ports,
    )


def _redis_cluster(given: bool, saved: Mapping[str, object], root: Path) -> bool:
    before = saved.get("redis_cluster", False if saved else None)
    if given and before is False:
        raise StackConfigError(
            f"the stack in {root} was made with one Redis, not a Redis Cluster: "
            "run `flashgate stack down` and remove the folder (or use another --state-dir)"
        )
    return given or before is True


def _redis_cluster_ports(
    cluster: bool, redis_port: int, used: set[int], saved: Mapping[str, object], *, free_ports: bool
) -> tuple[tuple[int, int], ...]:
    """(client, bus) of every cluster node, p1's client port being `redis_port`: saved, else free, else offsets."""
    if not cluster:
        return ()
    count = len(REDIS_CLUSTER_NODES)
    raw = saved.get("redis_cluster_ports")
    if isinstance(raw, list) and len(raw) == count:
        pairs = [(int(c), int(b)) for c, b in raw]
    elif free_ports:
        taken = set(used)
        pairs = []
        for i in range(count):
            c = redis_port if i == 0 else free_port(exclude=taken)
            b = free_port(exclude=taken | {c})
            taken |= {c, b}
            pairs.append((c, b))
    else:
        pairs = [(redis_port + i, redis_port + 100 + i) for i in range(count)]
    pairs[0] = (redis_port, pairs[0][1])  # p1 follows --redis-port
    for c, b in pairs:
        if not (1 <= c <= 65535 and 1 <= b <= 65535):
            raise StackConfigError(f"redis cluster ports {c}/{b} are outside 1-65535; choose a lower --redis-port")
    return tuple(pairs)


def _kafka_brokers(given: int | None, saved: Mapping[str, object], root: Path) -> int:
    before = saved.get("kafka_brokers", 1 if saved else None)  # a stack.json without the key: one node
    if given is not None and given not in KAFKA_BROKER_COUNTS:
        counts = ", ".join(map(str, KAFKA_BROKER_COUNTS))
        raise StackConfigError(f"--kafka-brokers {given}: choose {counts} (a KRaft quorum needs an odd count)")
    if given is not None and before is not None and given != before:
        raise StackConfigError(
            f"the stack in {root} was made with {before} Kafka broker(s), not {given}: "
            "run `flashgate stack down` and remove the folder (or use another --state-dir)"
        )
    count = given if given is not None else before
    return count if isinstance(count, int) else 1


def _kafka_node_ports(
    brokers: int, chosen: Mapping[str, int], saved: Mapping[str, object], *, free_ports: bool
) -> tuple[tuple[int, int], ...]:
    """Ports of KRaft nodes 2..N: saved, else free, else 2 above the previous node's."""
    raw = saved.get("kafka_node_ports")
    if isinstance(raw, list) and len(raw) == brokers - 1:
        pairs = tuple((int(b), int(c)) for b, c in raw)
    elif free_ports:
        used = set(chosen.values())
        picked: list[tuple[int, int]] = []
        for _ in range(brokers - 1):
            b = free_port(exclude=used)
            c = free_port(exclude=used | {b})
            used |= {b, c}
            picked.append((b, c))
        pairs = tuple(picked)
    else:
        b1, c1 = chosen["kafka_port"], chosen["kafka_controller_port"]
        pairs = tuple((b1 + 2 * n, c1 + 2 * n) for n in range(1, brokers))
    for b, c in pairs:
        if not (1 <= b <= 65535 and 1 <= c <= 65535):
            raise StackConfigError(f"kafka node ports {b}/{c} are outside 1-65535; choose lower --kafka-port values")
    return pairs


def _prometheus_settings(given: Mapping[str, int | None], saved: Mapping[str, object]) -> dict[str, int]:
    chosen = {}
    for name, default in PROMETHEUS_DEFAULTS.items():
        value = given.get(name)
        if value is None:
            value = _saved_port(saved, name)
        chosen[name] = default if value is None else value
    for name in ("gate_port", "worker_metrics_port", "monitor_port"):
        if not 1 <= chosen[name] <= 65535:
            raise StackConfigError(f"--{name.replace('_', '-')} {chosen[name]} is outside 1-65535")
    if chosen["prometheus_interval_s"] < 1 or chosen["prometheus_alert_for_s"] < 0:
        raise StackConfigError("--prometheus-interval-s must be >= 1 and --prometheus-alert-for-s >= 0")
    return chosen


def _env_port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(PORT_ENV[name])
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise StackConfigError(f"{PORT_ENV[name]}={raw!r} is not a port number")
    return int(raw)


def _saved_port(saved: Mapping[str, object], name: str) -> int | None:
    value = saved.get(name)
    return value if isinstance(value, int) else None


def _check_port(name: str, port: int) -> int:
    if not 1 <= port <= 65535:
        raise StackConfigError(f"{PORT_OPTION[name]} {port} is outside 1-65535")
    return port


def _load_saved(root: Path) -> dict[str, object]:
    path = root / STACK_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StackConfigError(f"{path} is unreadable ({e}); delete it or the state folder") from e
    if not isinstance(data, dict):
        raise StackConfigError(f"{path} is not a JSON object; delete it or the state folder")
    return data
