"""Redis Cluster redirections under buyer load (issue 14), driven on the live cluster rather than mapped:
a SKU's slot moved to another primary mid-sale (TRYAGAIN and ASK while it moves, MOVED after), then the
new owner handed to its replica by a manual failover (MOVED from the demoted node). Buyers see 503 +
Retry-After and never 500 while the gate's slot map is behind, and the gate sells the SKU again on its
new node by itself; another SKU of the old owner sells on throughout. Ends with the shared invariant check.

READONLY is not driven here: a replica in cluster mode answers a write for its primary's slots with
MOVED, never READONLY (tests/chaos/test_redis_refusals.py drives READONLY on one Redis).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from flashgate.orderindex import sku_slot
from tests.chaos.checker import Invariants
from tests.chaos.cluster.rcluster import fail_over, move_slot, owner_of, roles, settled, shard_of, sku_on
from tests.chaos.cluster.rig import Phases, eventually, selling, stop_all
from tests.chaos.load import Load
from tests.support.pipeline import WorkerProcess
from tests.support.poll import until
from tests.support.procs import GateProcess
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.chaos

STEP_PAUSE_S = 0.4  # between the slot's MIGRATE steps: buyers meet the slot half moved


async def sells_again(load: Load, began: float) -> float:
    """Seconds from `began` until the next 202 for the load's SKU."""
    after = len(load.attempts)
    await until(lambda: any(a.status == 202 for a in load.attempts[after:]), timeout_s=15, what=f"{load.sku} sold")
    return time.monotonic() - began


async def test_r5_slot_moved_then_failed_over_under_load(
    stack: StackHandle,
    cluster_gate: GateProcess,
    cluster_worker: WorkerProcess,
    name: str,
    invariants: Invariants,
) -> None:
    phases = Phases()
    await eventually(lambda: settled(stack), timeout_s=60, what="redis cluster settled")
    sku = sku_on(stack, f"{name}-moved")
    source, _ = shard_of(stack, sku)
    target = next(n for n, (role, _) in sorted(roles(stack).items()) if role == "primary" and n != source)
    bystander = sku_on(stack, f"{name}-stays", primary=source)
    assert sku_slot(bystander) != sku_slot(sku)
    logged = len(cluster_gate.log())
    moved, stays = await asyncio.gather(selling(cluster_gate, stack, sku), selling(cluster_gate, stack, bystander))
    phases.done("sales, load")

    mark, mark_stays = len(moved.attempts), len(stays.attempts)
    began = time.monotonic()
    keys = await asyncio.to_thread(move_slot, stack, sku_slot(sku), source, target, pause_s=STEP_PAUSE_S)
    migrated = time.monotonic() - began
    resharded = await sells_again(moved, time.monotonic())
    assert owner_of(stack, sku) == target
    phases.done("slot moved")

    _, replica = shard_of(stack, sku)
    began = time.monotonic()
    await asyncio.to_thread(fail_over, stack, replica)
    await eventually(lambda: owner_of(stack, sku) == replica, timeout_s=15, what=f"{replica} took over")
    failed_over = await sells_again(moved, began)
    phases.done("failover")
    during_stays = stays.statuses_since(mark_stays)
    await stop_all(moved, stays)

    seen = moved.statuses_since(mark)
    assert {status for status, _ in seen} == {202, 503}, seen
    assert {status for status, _ in during_stays} == {202}, during_stays  # the old owner kept serving its slots
    log = cluster_gate.log()[logged:]
    refused = {kind for kind in ("TRYAGAIN", "ASK", "MOVED") if f"Redis refused a command: {kind} " in log}
    assert refused == {"TRYAGAIN", "ASK", "MOVED"}, log[-2000:]
    await asyncio.gather(
        invariants.check(
            sku,
            fault=f"r5 slot {sku_slot(sku)} moved {source}->{target} ({keys} keys, {migrated:.1f} s), sold again "
            f"{resharded:.1f} s after; {target}'s replica {replica} took over by CLUSTER FAILOVER, sold again "
            f"{failed_over:.1f} s after; {seen[(503, 'redis_unavailable')]} answers 503, 0 answers 500; "
            f"{sum(during_stays.values())} answers 202 for {bystander} on {source} meanwhile",
            loads=[moved],
        ),
        invariants.check(bystander, fault=f"r5 bystander on {source}", loads=[stays]),
    )
    phases.done("stop, verify")
    print(phases)
