"""Kafka cluster faults under buyer load (issue 14): one of three brokers killed, then the active controller
that also leads partitions of `orders`, then two of the three; each ends with the shared invariant check and
one summary line.

One gate and one worker serve both scenarios (conftest.py), each scenario on its own SKU. Every
scenario starts from a settled cluster (every replica in sync, preferred leaders leading), so a
broker killed now never meets partitions still short of the replica the previous scenario killed.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from click.testing import CliRunner

from flashgate import names
from ops.stack.cli import stack_group
from ops.topics.cli import topics_group
from tests.chaos.checker import Invariants
from tests.chaos.cluster.kraft import (
    CONSUMER_OFFSETS,
    active_controller,
    led_by,
    live_nodes,
    node_down,
    partitions,
    produce_one,
    scratch_topic,
)
from tests.chaos.cluster.rig import Phases, eventually, gate_counter, start_load
from tests.chaos.conftest import OpenSale
from tests.chaos.load import Load
from tests.support.pipeline import WorkerProcess
from tests.support.poll import until
from tests.support.procs import GateProcess
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.chaos

FAULT_S = 10.0  # how long a broker stays down (issue 14: ~10 s)
TWO_DOWN_S = 6.0  # two brokers down this long (c3): shorter than c1's, the restart of two nodes costs more
PROBE_S = 4.0  # the probe producer's request and message timeout while two brokers are down


async def settled(stack: StackHandle) -> None:
    """Every partition of the pipeline's topics fully in sync and led by its preferred replica."""
    topics = (names.ORDERS_TOPIC, names.DLQ_TOPIC, CONSUMER_OFFSETS)
    await eventually(lambda: all(p.settled for p in partitions(stack, *topics)), timeout_s=90, what="cluster settled")


async def finish_load(load: Load, after: int) -> None:
    """Stop once an order after the restart was handed to Kafka again; every buyer must hold a 202."""
    await until(lambda: any(a.state == "accepted" for a in load.attempts[after:]), what="handoff after the restart")
    await load.stop()
    assert not load.unanswered(), load.unanswered()[:3]
    assert load.final_statuses() == {202: len(load.final)}, (load.final_statuses(), load.codes())


def answers(load: Load, mark: int) -> str:
    """What buyers saw from the fault on: answers, how many `queued`, the slowest 202."""
    since = load.attempts[mark:]
    queued = sum(a.state == "queued" for a in since)
    slowest = max(a.latency_s for a in since if a.status == 202)
    return f"{len(since)} answered since, {queued} queued, slowest 202 {slowest:.2f} s"


def test_cluster_stack_has_three_nodes_and_the_topic_spec(stack: StackHandle) -> None:
    assert live_nodes(stack) == [1, 2, 3]
    assert len(stack.kafka_bootstrap.split(",")) == 3
    states = partitions(stack, names.ORDERS_TOPIC, names.DLQ_TOPIC)
    assert len([p for p in states if p.topic == names.ORDERS_TOPIC]) == 6
    assert all(len(p.replicas) == 3 for p in states), states
    # The production spec (replication 3, min.insync.replicas 2) is what the cluster stack made.
    result = CliRunner().invoke(topics_group, ["ensure", "--check"], env=stack.env)
    assert (result.exit_code, result.stdout.strip()) == (0, "topics in spec: orders, orders.dlq"), result.output
    # `flashgate stack status` names the active controller (the quorum leader) in its ROLE column.
    result = CliRunner().invoke(stack_group, ["status", "--state-dir", str(stack.state_dir)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split(None, 4)[4] for line in result.stdout.splitlines()[1:]}
    leader = active_controller(stack)
    assert {n: rows[f"kafka-{n}"] for n in (1, 2, 3)} == {
        n: "active controller" if n == leader else "controller" for n in (1, 2, 3)
    }, result.stdout
    assert rows["postgres"] == "-"


async def test_c1_one_of_three_brokers_killed(
    stack: StackHandle,
    cluster_gate: GateProcess,
    cluster_worker: WorkerProcess,
    open_sale: OpenSale,
    invariants: Invariants,
) -> None:
    phases = Phases()
    await settled(stack)
    controller = active_controller(stack)
    assert controller is not None, "no quorum leader in a settled cluster"
    states = partitions(stack, names.ORDERS_TOPIC)
    # A broker that is not the controller (the next scenario's fault) and leads partitions of orders.
    victim = max((n for n in live_nodes(stack) if n != controller), key=lambda n: len(led_by(states, n, "orders")))
    led = led_by(states, victim, names.ORDERS_TOPIC)
    assert led, f"kafka-{victim} leads no partition of orders: {states}"
    phases.done("settle")

    load = await start_load(cluster_gate, open_sale)
    phases.done("sale, load")
    mark = load.sent
    async with node_down(stack, victim):
        await asyncio.sleep(FAULT_S)
        phases.done("down")
    phases.done("restart")
    await finish_load(load, load.sent)
    phases.done("handoff again")
    await invariants.check(
        load.sku,
        fault=f"c1 kafka-{victim} of 3 (leader of orders {led}) SIGKILLed {FAULT_S:.0f} s, restarted: "
        f"{answers(load, mark)}",
        loads=[load],
    )
    phases.done("drain, verify")
    print(phases)


async def test_c2_active_controller_leading_partitions_killed(
    stack: StackHandle,
    cluster_gate: GateProcess,
    cluster_worker: WorkerProcess,
    open_sale: OpenSale,
    invariants: Invariants,
) -> None:
    phases = Phases()
    await settled(stack)
    victim = active_controller(stack)
    assert victim is not None, "no quorum leader in a settled cluster"
    states = partitions(stack, names.ORDERS_TOPIC, CONSUMER_OFFSETS)
    led = led_by(states, victim, names.ORDERS_TOPIC)
    assert led, f"the controller kafka-{victim} leads no partition of orders: {states}"
    coordinator = ", the writers' group coordinator" if led_by(states, victim, CONSUMER_OFFSETS) else ""
    phases.done("settle")

    load = await start_load(cluster_gate, open_sale)
    phases.done("sale, load")
    mark = load.sent
    async with node_down(stack, victim):
        killed = time.monotonic()
        elected = await eventually(
            lambda: active_controller(stack) not in (None, victim),
            timeout_s=30,
            what="a controller elected among the survivors",
        )
        moved = await eventually(
            lambda: not led_by(partitions(stack, names.ORDERS_TOPIC), victim, names.ORDERS_TOPIC),
            timeout_s=30,
            what="the dead broker's partitions led by survivors",
        )
        successor = active_controller(stack)
        await asyncio.sleep(max(0.0, FAULT_S - (time.monotonic() - killed)))
        phases.done("down")
    phases.done("restart")
    await finish_load(load, load.sent)
    phases.done("handoff again")
    # The check also waits for the writers' lag to drain to 0, not only for stock + sold = on sale.
    await invariants.check(
        load.sku,
        fault=f"c2 controller kafka-{victim} (leader of orders {led}{coordinator}) SIGKILLed {FAULT_S:.0f} s: "
        f"kafka-{successor} controller after {elected:.1f} s, its partitions led elsewhere after {moved:.1f} s; "
        f"{answers(load, mark)}",
        loads=[load],
    )
    phases.done("drain, verify")
    print(phases)


async def test_c3_two_of_three_brokers_killed(
    stack: StackHandle,
    cluster_gate: GateProcess,
    cluster_worker: WorkerProcess,
    open_sale: OpenSale,
    invariants: Invariants,
    name: str,
) -> None:
    """With min.insync.replicas 2, no write can be acknowledged: buyers get 202 `queued` (the orders wait in the
    Redis outbox), never 500; once the brokers are back the relay publishes them, nothing lost or doubled.

    Two of three combined KRaft nodes down is also the controller quorum lost: the ISR cannot shrink, so the
    survivor's partitions time out (REQUEST_TIMED_OUT) rather than answer NOT_ENOUGH_REPLICAS, and the dead
    nodes' partitions keep their dead leaders. The probe topic's line shows which the producer met.
    """
    phases = Phases()
    await settled(stack)
    survivor = active_controller(stack)  # the controller stays: it loses its quorum all the same
    assert survivor is not None, "no quorum leader in a settled cluster"
    victims = tuple(n for n in live_nodes(stack) if n != survivor)
    # A probe topic whose partition 0 the survivor leads and partition 1 a victim: what a producer is told.
    await asyncio.to_thread(scratch_topic, stack, name, (survivor, victims[0]))
    before = [await asyncio.to_thread(produce_one, stack, name, p, timeout_s=10) for p in (0, 1)]
    assert before == ["delivered", "delivered"], before
    phases.done("settle, probe topic")

    load = await start_load(cluster_gate, open_sale)
    failed = gate_counter(cluster_gate, "flashgate_gate_kafka_deliveries_total", result="failed")
    phases.done("sale, load")
    mark = load.sent
    async with node_down(stack, *victims):
        killed = time.monotonic()
        probes = await asyncio.gather(
            *(asyncio.to_thread(produce_one, stack, name, p, timeout_s=PROBE_S) for p in (0, 1))
        )
        await asyncio.sleep(max(0.0, TWO_DOWN_S - (time.monotonic() - killed)))
        during = load.statuses_since(mark)
        queued = sum(a.state == "queued" for a in load.attempts[mark:])
        phases.done("down")
    phases.done("restart")
    await finish_load(load, load.sent)
    phases.done("handoff again")
    failed = gate_counter(cluster_gate, "flashgate_gate_kafka_deliveries_total", result="failed") - failed
    assert "delivered" not in probes, probes  # two of three replicas gone: below min.insync.replicas
    assert {status for status, _ in during} == {202}, during
    assert queued > 0, "no order was answered `queued` while two brokers were down"
    await invariants.check(
        load.sku,
        fault=f"c3 kafka-{victims[0]} and kafka-{victims[1]} of 3 SIGKILLed {TWO_DOWN_S:.0f} s (kafka-{survivor}, the "
        f"controller, alone): acks=all produce led by the survivor -> {probes[0]}, by a dead node -> {probes[1]}; "
        f"{failed:.0f} gate deliveries failed; {answers(load, mark)}",
        loads=[load],
    )
    phases.done("drain, verify")
    print(phases)
