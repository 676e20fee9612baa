"""The chaos suite's rig: its own stack, real gate and worker processes, sales, the invariant check.

Why a stack of its own: these tests kill, freeze and wipe Redis, Kafka and PostgreSQL. Each fault
is undone in a `finally`, but a service that fails to come back (or a Redis that was wiped on
purpose) must not turn the rest of the run red for reasons that have nothing to do with it. The
chaos stack also makes the `orders` topic and the writers' group ours alone, so "drained" means
something. It costs one more `stack up` (a few seconds); the session stack is started only after
this package is done, so the two never run side by side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from flashgate import names
from tests.chaos.checker import Invariants, cli
from tests.conftest import own_stack
from tests.support.pipeline import Topics, WorkerProcess, start_worker
from tests.support.procs import FlashgateProcess, GateProcess, gate_env
from tests.support.stackctl import StackHandle

SUMMARY = pytest.StashKey[list[str]]()

# Fault tolerance timings, shortened (keeping their order) so a test sees a full recovery in
# seconds: librdkafka gives up on a message after 3 s, the relay republishes entries idle 4 s.
GATE_DEFAULTS: dict[str, object] = {
    "delivery_budget_ms": 1000,
    "message_timeout_ms": 3000,
    "relay_stale_ms": 4000,
    "relay_interval_ms": 250,
}
ORDERS = Topics(orders=names.ORDERS_TOPIC, dlq=names.DLQ_TOPIC, group=names.WRITERS_GROUP)

StartGate = Callable[..., GateProcess]
StartWorker = Callable[..., WorkerProcess]
OpenSale = Callable[..., Awaitable[str]]


@pytest.fixture(scope="package")
def stack() -> Iterator[StackHandle]:
    """A stack for the chaos tests alone (overrides the session stack in this folder)."""
    yield from own_stack("chaos stack", "-chaos")


@pytest.fixture
def gates(stack: StackHandle, tmp_path: Path) -> Iterator[StartGate]:
    """Start `flashgate gate` processes (GATE_DEFAULTS plus overrides); all are killed at teardown."""
    started: list[FlashgateProcess] = []

    def start(*, workers: int = 1, **settings: object) -> GateProcess:
        gate = GateProcess.start(stack, tmp_path / f"gate{len(started)}.log", workers, {**GATE_DEFAULTS, **settings})
        started.append(gate)
        return gate

    yield start
    for gate in started:
        gate.close()


@pytest.fixture
def relays(stack: StackHandle, tmp_path: Path) -> Iterator[Callable[..., FlashgateProcess]]:
    """Start `flashgate relay` processes; all are killed at teardown."""
    started: list[FlashgateProcess] = []

    def start(**settings: object) -> FlashgateProcess:
        env = gate_env(stack, **{**GATE_DEFAULTS, **settings})
        relay = FlashgateProcess.spawn(["relay"], env, tmp_path / f"relay{len(started)}.log")
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.close()


@pytest.fixture
def workers(stack: StackHandle, tmp_path: Path) -> Iterator[StartWorker]:
    """Start `flashgate worker` processes on `orders` as the writers' group; stopped at teardown.

    `on`: the stack as this worker should see it (e.g. another DATABASE_URL); settings become
    FLASHGATE_WORKER_<NAME>.

    SIGTERM first, so the worker leaves the group at once and the next test's worker is assigned
    every partition without waiting out a session timeout.
    """
    started: list[WorkerProcess] = []

    def start(on: StackHandle | None = None, **settings: object) -> WorkerProcess:
        w = start_worker(on or stack, ORDERS, tmp_path / f"worker{len(started)}.log", **settings)
        started.append(w)
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            with contextlib.suppress(Exception):  # close() kills it
                w.terminate(timeout_s=15)
        w.close()


@pytest.fixture
def open_sale(stack: StackHandle, name: str) -> OpenSale:
    """`await open_sale(units)` → a fresh SKU on sale, made as on-call would: `flashgate sale create`."""
    count = 0

    async def open_(units: int) -> str:
        nonlocal count
        sku = f"{name}-{count}"
        count += 1
        await cli(stack, "sale", "create", "--sku", sku, "--name", f"chaos {sku}", "--stock", str(units))
        return sku

    return open_


@pytest.fixture
def invariants(stack: StackHandle, tmp_path: Path, request: pytest.FixtureRequest) -> Invariants:
    """The shared invariant check; its summary line is printed and repeated at the end of the run."""

    def record(line: str) -> None:
        print(line)
        request.config.stash.setdefault(SUMMARY, []).append(line)

    return Invariants(stack=stack, workdir=tmp_path, record=record)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("chaos summary")
        for line in lines:
            terminalreporter.write_line(line)
