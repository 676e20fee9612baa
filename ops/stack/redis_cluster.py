"""Join the stack's Redis nodes into one Redis Cluster with redis-cli, and wait until it serves.

Created once per state folder: `redis-cli --cluster create` of the three primaries (the slots
split in three), then each replica added to its primary (`redis-r1` follows `redis-p1`, and so
on) with `redis-cli --cluster add-node --cluster-slave`. Each node keeps what it learnt in its
nodes.conf, so a restart rejoins by itself; a later `up` finds the cluster made and only waits.
Roles are not names: after a failover `redis-r1` may be the primary and `redis-p1` its replica.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

import redis

from ops.stack.errors import ServiceFailed
from ops.stack.redis_service import RedisClusterNode
from ops.stack.service import require_binary
from ops.stack.settings import REDIS_CLUSTER_NODES

SLOTS = 16384
FORM_TIMEOUT_S = 60.0


def _client(node: RedisClusterNode) -> redis.Redis:
    return redis.Redis(port=node.port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)


def cluster_info(node: RedisClusterNode) -> dict[str, str]:
    """CLUSTER INFO of one node as a dict (redis-py parses it); empty when the node does not answer."""
    client = _client(node)
    try:
        info = client.cluster("INFO")
    except redis.RedisError:
        return {}
    finally:
        client.close()
    return {str(k): str(v) for k, v in info.items()} if isinstance(info, dict) else {}


def _redis_cli(*args: str) -> None:
    done = subprocess.run(
        [require_binary("redis-cli", "redis-tools"), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0 or "[ERR]" in done.stdout:
        lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERR" in ln] or lines
        last = errors[-1] if errors else done.returncode
        raise ServiceFailed(f"redis cluster: redis-cli {args[0]} {args[1]} failed: {last}")


def ensure_cluster(nodes: Sequence[RedisClusterNode]) -> float:
    """Create the cluster unless made already, then wait for `cluster_state:ok` on every node; seconds taken."""
    began = time.monotonic()
    primaries, replicas = nodes[:3], nodes[3:]
    known = [int(cluster_info(n).get("cluster_known_nodes", "0")) for n in nodes]
    if all(k == 1 for k in known):
        _redis_cli("--cluster", "create", *(f"127.0.0.1:{p.port}" for p in primaries), "--cluster-replicas", "0",
                   "--cluster-yes")  # fmt: skip
        for primary, replica in zip(primaries, replicas, strict=True):
            client = _client(primary)
            try:
                primary_id = str(client.cluster("MYID"))
            finally:
                client.close()
            _redis_cli("--cluster", "add-node", f"127.0.0.1:{replica.port}", f"127.0.0.1:{primary.port}",
                       "--cluster-slave", "--cluster-master-id", primary_id)  # fmt: skip
    elif not all(k == len(nodes) for k in known):
        raise ServiceFailed(
            f"redis cluster: nodes know {known} nodes each, not {len(nodes)}: a half-made cluster; "
            f"run `flashgate stack down` and remove {nodes[0].settings.state_dir}"
        )
    wait_ok(nodes, timeout_s=FORM_TIMEOUT_S)
    return time.monotonic() - began


def healthy(info: dict[str, str], nodes: int) -> bool:
    """A node's CLUSTER INFO says the cluster serves every slot and it knows every node."""
    return (
        info.get("cluster_state") == "ok"
        and info.get("cluster_slots_ok") == str(SLOTS)
        and info.get("cluster_known_nodes") == str(nodes)
    )


def wait_ok(nodes: Sequence[RedisClusterNode], *, timeout_s: float, whole: bool = True) -> None:
    """Poll until every node reports `cluster_state:ok`, and (`whole`) all slots served and every node known.

    Not `whole`: a node restarted alone, while another shard may still be down on purpose.
    ServiceFailed at the deadline.
    """
    count = len(REDIS_CLUSTER_NODES)

    def ok(info: dict[str, str]) -> bool:
        return healthy(info, count) if whole else info.get("cluster_state") == "ok"

    deadline = time.monotonic() + timeout_s
    while True:
        infos = {n.name: cluster_info(n) for n in nodes}
        if all(ok(info) for info in infos.values()):
            return
        if time.monotonic() > deadline:
            bad = {name: info.get("cluster_state", "no answer") for name, info in infos.items() if not ok(info)}
            raise ServiceFailed(f"redis cluster not ok within {timeout_s:.0f} s: {bad}")
        time.sleep(0.1)
