"""The local KRaft cluster as a test sees it: nodes killed and restarted, the active controller, leaders, ISR.

Node faults go through the launcher's own API in process (`ops.stack.stack.Stack`), in a thread
so the load keeps running: the same code as `flashgate stack kill|start kafka-N`, without a
`flashgate` process (2 CPU-s of imports) per command.

The active controller (the quorum leader) is not in Kafka's client metadata (KRaft answers a
DescribeCluster with any broker), so it is read from each node's `quorum-state` file as
`flashgate stack status` reads it (ops/stack/roles.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from ops.stack import roles
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
async def node_down(stack: StackHandle, *nodes: int) -> AsyncIterator[None]:
    """KRaft nodes SIGKILLed inside the block, as a crash would; started after, together (each waited on)."""
    run = launcher(stack)

    def kill_all() -> None:
        for node in nodes:
            run.kill(f"kafka-{node}")

    def start_all() -> None:
        # Together: a node alone may need the others for a quorum before it serves.
        with ThreadPoolExecutor(len(nodes)) as pool:
            for started in [pool.submit(run.start, f"kafka-{node}") for node in nodes]:
                started.result()

    try:
        await asyncio.to_thread(kill_all)
        yield
    finally:
        await asyncio.to_thread(start_all)


def active_controller(stack: StackHandle) -> int | None:
    """The node id of the quorum leader, as the live nodes last recorded it; None during an election."""
    return roles.active_controller(
        {node.node_id: roles.quorum_state(node) for node in launcher(stack).kafka_nodes if node.pid() is not None}
    )


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


def scratch_topic(stack: StackHandle, topic: str, leaders: tuple[int, ...]) -> None:
    """A topic with one partition led by each of `leaders`, replicated on all nodes, `min.insync.replicas` 2."""
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap, "log_level": 0})
    nodes = live_nodes(stack)
    assignment = [[leader, *(n for n in nodes if n != leader)] for leader in leaders]
    spec = NewTopic(topic, len(assignment), replica_assignment=assignment, config={"min.insync.replicas": "2"})
    admin.create_topics([spec])[topic].result(timeout=30)


def produce_one(stack: StackHandle, topic: str, partition: int, *, timeout_s: float) -> str:
    """One message sent with acks=all and no retry: "delivered", or the error the broker (or the client) reported."""
    reports: list[KafkaError | None] = []
    producer = Producer({
        "bootstrap.servers": stack.kafka_bootstrap, "acks": "all", "enable.idempotence": False, "retries": 0,
        "request.timeout.ms": int(timeout_s * 1000), "message.timeout.ms": int(timeout_s * 1000), "log_level": 0,
    })  # fmt: skip
    producer.produce(topic, b"probe", partition=partition, on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(timeout_s + 5)
    if not reports:
        return "no report"
    return "delivered" if reports[0] is None else str(reports[0].name())
