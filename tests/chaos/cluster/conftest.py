"""The cluster scenarios' rig: a stack of three KRaft brokers, one gate and one worker, started once for this folder.

It overrides the chaos stack (tests/chaos/conftest.py) here; the chaos fixtures (sales, the
invariant check) run on it unchanged. What keeps the folder's wall time small on the 2-core box:
- the stack starts once, its nodes with `--kafka-fast-start` (C1-only JVMs: half the CPU to
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
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.cluster.kraft import launcher
from tests.chaos.conftest import GATE_DEFAULTS, ORDERS
from tests.conftest import IN_CI
from tests.pipeline import WorkerProcess, start_worker
from tests.procs import GateProcess
from tests.stackctl import StackHandle, flashgate


@pytest.fixture(scope="package")
def stack() -> Iterator[StackHandle]:
    """A 3-broker stack for the cluster scenarios alone (replication 3, min.insync.replicas 2)."""
    base = Path(os.environ.get("FLASHGATE_TEST_STACK_DIR", ".stack-test")).resolve()
    state_dir = base.with_name(base.name + "-chaos-cluster")
    flashgate("stack", "down", "--state-dir", str(state_dir), check=False)
    shutil.rmtree(state_dir, ignore_errors=True)
    began = time.monotonic()
    try:
        handle = StackHandle.up(state_dir, "--kafka-brokers", "3", "--kafka-fast-start")
    except AssertionError as e:
        if IN_CI:
            pytest.fail(f"the cluster stack did not start: {e}", pytrace=False)
        pytest.skip(f"the cluster stack did not start: {e}")
    print(f"cluster stack up in {time.monotonic() - began:.1f} s")
    try:
        yield handle
    finally:
        if not os.environ.get("FLASHGATE_TEST_KEEP_STACK"):
            began = time.monotonic()
            run = launcher(handle)
            run.kill("kafka")
            run.down()
            print(f"cluster stack down in {time.monotonic() - began:.1f} s")


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
