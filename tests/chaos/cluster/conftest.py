"""The cluster scenarios' rig: three KRaft brokers and a Redis Cluster (3 primaries, 3 replicas), one gate and
one worker, started once for this folder.

It overrides the chaos stack (tests/chaos/conftest.py) here; the chaos fixtures (sales, the
invariant check) run on it unchanged. What keeps the folder's wall time small on the 2-core box:
- the stack starts once (both clusters: the Kafka scenarios run on a Redis Cluster too, the Redis
  ones on three brokers), its Kafka nodes with `--kafka-fast-start` (C1-only JVMs: half the CPU to
  start, paid three times at `up` and once per restart);
- one gate and one worker serve every scenario (each scenario sells its own SKU), and that they
  live through every fault in a row is part of what is tested;
- nodes are killed and restarted through the launcher's API in process (`kraft.node_down`), not
  a `flashgate` process per command, each of which costs 2 CPU-s of imports (so is teardown);
- at the end the stack is SIGKILLed, not stopped gracefully: it is deleted before its next use.
pytest collects this folder before the chaos modules beside it, so this stack is gone before the
single-broker chaos stack comes up: the two never run side by side.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from tests.chaos.cluster.kraft import launcher
from tests.chaos.conftest import GATE_DEFAULTS, ORDERS
from tests.conftest import own_stack
from tests.support.pipeline import WorkerProcess, start_worker
from tests.support.procs import GateProcess
from tests.support.stackctl import StackHandle


@pytest.fixture(scope="package")
def stack() -> Iterator[StackHandle]:
    """A stack for the cluster scenarios alone: 3 brokers (replication 3, min.insync.replicas 2), a Redis Cluster."""

    def stop(handle: StackHandle) -> None:
        began = time.monotonic()
        run = launcher(handle)
        run.kill("kafka")
        run.kill("redis")
        run.down()
        print(f"cluster stack down in {time.monotonic() - began:.1f} s")

    yield from own_stack(
        "cluster stack", "-chaos-cluster", "--kafka-brokers", "3", "--kafka-fast-start", "--redis-cluster", stop=stop
    )


@pytest.fixture(scope="package")
def cluster_gate(stack: StackHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateProcess]:
    """One `flashgate gate` (chaos timings: 1 s delivery budget, 3 s message timeout) for every scenario."""
    gate = GateProcess.start(stack, tmp_path_factory.mktemp("cluster") / "gate.log", 1, dict(GATE_DEFAULTS))
    yield gate
    gate.close()


@pytest.fixture(scope="package")
def cluster_worker(stack: StackHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One `flashgate worker` in the writers' group for every scenario."""
    worker = start_worker(stack, ORDERS, tmp_path_factory.mktemp("cluster") / "worker.log")
    yield worker
    if worker.proc.poll() is None:
        with contextlib.suppress(Exception):  # close() kills it
            worker.terminate(timeout_s=15)
    worker.close()
