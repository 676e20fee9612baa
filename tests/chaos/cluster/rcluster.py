"""The local Redis Cluster as a test sees it: which node serves a SKU, roles, nodes killed and restarted.

Node faults go through the launcher's API in process (tests/chaos/cluster/kraft.py says why), in a
thread so the load keeps running. Roles are read from each node (ROLE), never assumed from names:
after a failover `redis-r1` may be the primary of what `redis-p1` served.
"""

from __future__ import annotations

import asyncio
import time
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


def owner_of(stack: StackHandle, sku: str) -> str:
    """The primary serving the SKU's slot, as some live node's slot map has it now, by node name."""
    slots, by_port = slot_map(stack)
    address = slots.node(sku_slot(sku))
    assert address is not None, f"no node serves {sku}'s slot"
    return by_port[address[1]]


def shard_of(stack: StackHandle, sku: str) -> tuple[str, str]:
    """(primary, its replica) serving the SKU's slot now, by node name."""
    primary = owner_of(stack, sku)
    port = node_ports(stack)[primary]
    replicas = [n for n, (role, of) in roles(stack).items() if role == "replica" and of == port]
    assert len(replicas) == 1, f"{primary} has replicas {replicas}"
    return primary, replicas[0]


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


def move_slot(
    stack: StackHandle, slot: int, source: str, target: str, *, keys_per_step: int = 2, pause_s: float
) -> int:
    """Move `slot` from primary `source` to primary `target` as `redis-cli --cluster reshard` does; keys moved.

    IMPORTING on the target, MIGRATING on the source, its keys MIGRATEd `keys_per_step` at a time
    with `pause_s` between steps (and before the end) so callers meet the slot half moved, then
    SETSLOT NODE on both and on every other primary, so any node answers MOVED to the new owner.
    Blocking: run it in a thread under load.
    """
    ports = node_ports(stack)
    ids = {name: _ask(ports[name], "CLUSTER", "MYID") for name in (source, target)}
    src, dst = node_client(ports[source]), node_client(ports[target])
    moved = 0
    try:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])  # type: ignore[no-untyped-call]
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])  # type: ignore[no-untyped-call]
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, keys_per_step):  # type: ignore[no-untyped-call]
            time.sleep(pause_s)
            src.execute_command("MIGRATE", "127.0.0.1", ports[target], "", 0, 5000, "KEYS", *keys)  # type: ignore[no-untyped-call]
            moved += len(keys)
        time.sleep(pause_s)
        # The target first (its epoch bump spreads the news), then the source, which answers MOVED from then on.
        for client in (dst, src):
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])  # type: ignore[no-untyped-call]
        for name in {n for n, (role, _) in roles(stack).items() if role == "primary"} - {source, target}:
            _ask(ports[name], "CLUSTER", "SETSLOT", slot, "NODE", ids[target])
    finally:
        src.close()
        dst.close()
    return moved


def fail_over(stack: StackHandle, replica: str) -> None:
    """`CLUSTER FAILOVER` on `replica`: it takes over its primary's slots, the primary becomes its replica."""
    client = node_client(node_ports(stack)[replica])
    try:
        client.execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call]
    finally:
        client.close()
