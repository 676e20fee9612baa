"""Who does what in the stack's clusters, for `flashgate stack status`: Redis primaries and replicas, the KRaft leader.

Each node is asked about itself, never judged by its name (after a failover `redis-r1` may be the
primary and `redis-p1` its replica):
- a Redis Cluster node's own line of CLUSTER NODES (`myself`): primary with its slot ranges, or
  replica and of which primary;
- a KRaft node's `quorum-state` file, which it rewrites at every election: the newest epoch among
  the live nodes names the active controller. Kafka's client API cannot tell: KRaft answers a
  DescribeCluster with any broker as "the controller".
A node that does not answer (or whose file is unreadable) gets no role, shown as "-".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import redis

from ops.stack.kafka_service import KafkaNode
from ops.stack.redis_service import RedisClusterNode


def redis_roles(myself: Mapping[str, str | None]) -> dict[str, str]:
    """Node name → "primary 0-5460" or "replica of redis-p1", from each node's own CLUSTER NODES line.

    `myself`: node name → its `myself` line (None: the node did not answer → ""). A replica whose
    primary did not answer names the primary by the first 8 characters of its node id; a slot being
    migrated (`[slot->-id]`, `[slot-<-id]`) is left out of the ranges.
    """
    names: dict[str, str] = {}
    parsed: dict[str, tuple[list[str], str, list[str]]] = {}
    for name, line in myself.items():
        if line is None:
            continue
        node_id, _address, flag_list, primary, *rest = line.split()
        names[node_id] = name
        parsed[name] = (flag_list.split(","), primary, rest[4:])  # after ping, pong, epoch, link state: the slots
    roles = dict.fromkeys(myself, "")
    for name, (flags, primary, slots) in parsed.items():
        if "slave" in flags:
            roles[name] = f"replica of {names.get(primary, primary[:8])}"
        elif "master" in flags:
            ranges = [s for s in slots if not s.startswith("[")]
            roles[name] = f"primary {','.join(ranges) or '(no slots)'}"
    return roles


def active_controller(quorum_states: Mapping[int, str | None]) -> int | None:
    """The KRaft quorum leader: node id → that node's `quorum-state` text (None: down or unreadable).

    The newest (epoch, leader) any node recorded wins; None during an election (leaderId -1) or
    when no file can be read.
    """
    newest = (-1, -1)
    for text in quorum_states.values():
        try:
            state = json.loads(text or "")
            leader, epoch = int(state["leaderId"]), int(state["leaderEpoch"])
        except (ValueError, KeyError, TypeError):
            continue
        if leader >= 0:
            newest = max(newest, (epoch, leader))
    return newest[1] if newest[1] >= 0 else None


def kafka_roles(nodes: Sequence[KafkaNode]) -> dict[str, str]:
    """Node name → "active controller" or "controller" (every node is a broker too) for a cluster; live nodes only."""
    states = {node.node_id: quorum_state(node) for node in nodes if node.pid() is not None}
    leader = active_controller(states)
    return {
        node.name: ("active controller" if node.node_id == leader else "controller") if node.node_id in states else ""
        for node in nodes
    }


def read_redis_roles(nodes: Sequence[RedisClusterNode]) -> dict[str, str]:
    """`redis_roles` of the live cluster: each node's `myself` line of CLUSTER NODES."""
    return redis_roles({node.name: _myself(node) for node in nodes})


def quorum_state(node: KafkaNode) -> str | None:
    """The text of the node's `quorum-state` file; None when it cannot be read."""
    try:
        return (node.data_dir / "__cluster_metadata-0" / "quorum-state").read_text()
    except OSError:
        return None


def _myself(node: RedisClusterNode) -> str | None:
    client = redis.Redis(port=node.port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
    try:
        text = str(client.execute_command("CLUSTER", "NODES"))  # type: ignore[no-untyped-call]
    except redis.RedisError:
        return None
    finally:
        client.close()
    return next((line for line in text.splitlines() if "myself" in line.split()[2].split(",")), None)
