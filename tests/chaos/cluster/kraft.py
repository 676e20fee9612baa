"""The local KRaft cluster as a test sees it: nodes killed and restarted, the active controller, leaders, ISR.

Node faults go through the launcher's own API in process (`ops.stack.stack.Stack`), in a thread
so the load keeps running: the same code as `flashgate stack kill|start kafka-N`, without a
`flashgate` process (2 CPU-s of imports) per command.

The active controller (the quorum leader) is not in Kafka's client metadata (KRaft answers a
DescribeCluster with any broker), so it is read from each node's `quorum-state` file, which the
node rewrites at every election; the newest epoch among the live nodes wins.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from ops.stack.settings import resolve
from ops.stack.stack import Stack
from tests.support.stackctl import StackHandle

CONSUMER_OFFSETS = "__consumer_offsets"


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def settled(self) -> bool:
        """Every replica in sync and the preferred replica (the first) leading."""
        return set(self.isr) == set(self.replicas) and self.leader == self.replicas[0]


def launcher(stack: StackHandle) -> Stack:
    """The launcher of `stack`, in process (its saved settings name the nodes and ports)."""
    return Stack(resolve(str(stack.state_dir), {}, env={}))


def live_nodes(stack: StackHandle) -> list[int]:
    """Node ids of the KRaft nodes whose process is alive (pid files, no probe)."""
    return [node.node_id for node in launcher(stack).kafka_nodes if node.pid() is not None]


@asynccontextmanager
async def node_down(stack: StackHandle, node: int) -> AsyncIterator[None]:
    """KRaft node `node` SIGKILLed inside the block, as a crash would; started after (and waited on)."""
    run = launcher(stack)
    try:
        await asyncio.to_thread(run.kill, f"kafka-{node}")
        yield
    finally:
        await asyncio.to_thread(run.start, f"kafka-{node}")


def active_controller(stack: StackHandle) -> int | None:
    """The node id of the quorum leader, as the live nodes last recorded it; None during an election."""
    newest = (-1, -1)
    for node in live_nodes(stack):
        path = stack.state_dir / f"kafka-{node}" / "data" / "__cluster_metadata-0" / "quorum-state"
        state = json.loads(path.read_text())
        if state["leaderId"] >= 0:
            newest = max(newest, (state["leaderEpoch"], state["leaderId"]))
    return newest[1] if newest[1] >= 0 else None


def partitions(stack: StackHandle, *topics: str) -> list[PartitionState]:
    """Leader, replicas and ISR of every partition of those `topics` that exist, as the brokers report them now."""
    # log_level 0: a node is down on purpose, its refused connections are no news.
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap, "socket.timeout.ms": 3000, "log_level": 0})
    meta = admin.list_topics(timeout=10)
    found = []
    for topic in topics:
        for p in meta.topics[topic].partitions.values() if topic in meta.topics else ():
            found.append(PartitionState(topic, p.id, p.leader, tuple(p.replicas), tuple(p.isrs)))
    return found


def led_by(states: list[PartitionState], node: int, topic: str) -> list[int]:
    return sorted(s.partition for s in states if s.topic == topic and s.leader == node)
