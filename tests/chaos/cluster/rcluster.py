"""The local Redis Cluster as a test sees it: which node serves a SKU, roles, nodes killed and restarted.

Node faults go through the launcher's API in process (tests/chaos/cluster/kraft.py says why), in a
thread so the load keeps running. Roles are read from each node (ROLE), never assumed from names:
after a failover `redis-r1` may be the primary of what `redis-p1` served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import redis

from flashgate.orderindex import sku_slot
from gate.redis_cluster import SlotMap
from tests.chaos.cluster.kraft import launcher
from tests.support.stackctl import StackHandle


def node_ports(stack: StackHandle) -> dict[str, int]:
    """Node name → client port, from the stack's saved settings."""
    return {node.name: node.port for node in launcher(stack).redis_nodes}


def node_client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)


def _ask(port: int, *command: Any) -> Any:
    client = node_client(port)
    try:
        return client.execute_command(*command)  # type: ignore[no-untyped-call]
    except redis.RedisError:
        return None
    finally:
        client.close()


def roles(stack: StackHandle) -> dict[str, tuple[str, int | None]]:
    """Node name → (role, port of its primary for a replica), ("down", None) when it does not answer."""
    out: dict[str, tuple[str, int | None]] = {}
    for name, port in node_ports(stack).items():
        role = _ask(port, "ROLE")
        if not role:
            out[name] = ("down", None)
        elif role[0] == "slave":
            out[name] = ("replica", int(role[2]))
        else:
            out[name] = ("primary", None)
    return out


def slot_map(stack: StackHandle) -> tuple[SlotMap, dict[int, str]]:
    """The cluster's slot map as some live node sees it, and port → node name."""
    ports = node_ports(stack)
    for port in ports.values():
        reply = _ask(port, "CLUSTER", "SLOTS")
        if reply:
            return SlotMap.parse(reply), {p: n for n, p in ports.items()}
    raise AssertionError("no Redis node answered CLUSTER SLOTS")


def shard_of(stack: StackHandle, sku: str) -> tuple[str, str]:
    """(primary, its replica) serving the SKU's slot now, by node name."""
    slots, by_port = slot_map(stack)
    address = slots.node(sku_slot(sku))
    assert address is not None, f"no node serves {sku}'s slot"
    replicas = [n for n, (role, of) in roles(stack).items() if role == "replica" and of == address[1]]
    assert len(replicas) == 1, f"{by_port[address[1]]} has replicas {replicas}"
    return by_port[address[1]], replicas[0]


def settled(stack: StackHandle) -> bool:
    """Six nodes up, three primaries, each with one replica whose link to it is up."""
    now = roles(stack)
    primaries = {node_ports(stack)[n] for n, (role, _) in now.items() if role == "primary"}
    replicas = [of for role, of in now.values() if role == "replica" and of is not None]
    links = [_ask(port, "INFO", "replication") for n, port in node_ports(stack).items() if now[n][0] == "replica"]
    up = all(isinstance(info, dict) and info.get("master_link_status") == "up" for info in links)
    return len(primaries) == 3 and sorted(replicas) == sorted(primaries) and up


@asynccontextmanager
async def nodes_down(stack: StackHandle, *names: str) -> AsyncIterator[None]:
    """These nodes SIGKILLed inside the block, as a crash would; started after, together (each waited on)."""
    run = launcher(stack)

    def kill_all() -> None:
        for n in names:
            run.kill(n)

    def start_all() -> None:
        with ThreadPoolExecutor(len(names)) as pool:
            for done in [pool.submit(run.start, n) for n in names]:
                done.result()

    try:
        await asyncio.to_thread(kill_all)
        yield
    finally:
        await asyncio.to_thread(start_all)


def sku_on(stack: StackHandle, prefix: str, *, primary: str | None = None, avoid: str | None = None) -> str:
    """A SKU name `prefix-N` whose slot `primary` serves (or any primary but `avoid`)."""
    slots, by_port = slot_map(stack)
    for n in range(10_000):
        sku = f"{prefix}-{n}"
        address = slots.node(sku_slot(sku))
        owner = by_port[address[1]] if address else None
        if owner is not None and (primary is None or owner == primary) and owner != avoid:
            return sku
    raise AssertionError(f"no SKU {prefix}-N on {primary or 'another primary'}")
