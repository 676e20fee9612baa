"""Redis from Debian's redis-server, with append-only-file persistence so a restart keeps data.

One node (`redis`), or a node of a Redis Cluster (`redis-p1` … `redis-r3`, `RedisClusterNode`):
the same server with cluster mode on and a bus port of its own; `ops/stack/redis_cluster.py`
joins the nodes into one cluster once all answer.
"""

from __future__ import annotations

import redis

from ops.stack import process
from ops.stack.service import Service, require_binary
from ops.stack.settings import REDIS_CLUSTER_NODES, StackSettings

# How long a silent node stays a primary before its replica takes over. Redis's default is 15 s;
# 5 s on loopback is far above any scheduling hiccup of a loaded 2-core box (seen: < 1 s) and
# keeps a failover test short.
CLUSTER_NODE_TIMEOUT_MS = 5000


class RedisService(Service):
    name = "redis"
    port_setting = "redis_port"
    start_timeout_s = 30.0

    @property
    def conf_path(self) -> str:
        return str(self.home / "redis.conf")

    def check_installed(self) -> None:
        require_binary("redis-server", "redis-server")

    def config_lines(self) -> list[str]:
        # appendfsync defaults to "always": a SIGKILLed Redis must not forget a stock decrement
        # it already answered for, or the gate could sell that unit twice after the restart.
        return [
            "bind 127.0.0.1",
            f"port {self.port}",
            "protected-mode yes",
            "daemonize no",
            f"dir {self.home}",
            "appendonly yes",
            "appenddirname appendonly",
            f"appendfsync {self.settings.redis_appendfsync}",
            'save ""',
            "maxclients 10000",
            "tcp-backlog 4096",
        ]

    def prepare(self) -> None:
        (self.home / "redis.conf").write_text("\n".join([*self.config_lines(), ""]))

    def launch(self) -> None:
        process.spawn(
            [require_binary("redis-server", "redis-server"), self.conf_path],
            log_path=self.log_path,
            pid_path=self.pid_path,
            cwd=self.home,
        )

    def probe(self) -> bool:
        client = redis.Redis(port=self.port, host="127.0.0.1", socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


class RedisClusterNode(RedisService):
    """Node `index` (0-based) of REDIS_CLUSTER_NODES: cluster mode, its own bus port, nodes.conf in its home."""

    def __init__(self, settings: StackSettings, index: int) -> None:
        super().__init__(settings)
        self.index = index
        self.name = REDIS_CLUSTER_NODES[index]

    @property
    def port(self) -> int:
        return self.settings.redis_cluster_ports[self.index][0]

    @property
    def bus_port(self) -> int:
        return self.settings.redis_cluster_ports[self.index][1]

    def ports(self) -> list[tuple[str, int, str]]:
        hint = "cluster nodes use ports picked at the first `up`: use another --state-dir with --free-ports"
        first = [self.port_hint(self.port_setting, self.port)] if self.index == 0 else [(self.name, self.port, hint)]
        return [*first, (self.name, self.bus_port, hint)]

    def check_installed(self) -> None:
        super().check_installed()
        require_binary("redis-cli", "redis-tools")

    def config_lines(self) -> list[str]:
        # Full coverage not required: with one shard's primary and replica both gone, the other
        # shards keep serving their slots (their SKUs keep selling); reads stop with the shard.
        return [
            *super().config_lines(),
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-port {self.bus_port}",
            f"cluster-node-timeout {CLUSTER_NODE_TIMEOUT_MS}",
            "cluster-require-full-coverage no",
            "cluster-allow-reads-when-down no",
        ]
