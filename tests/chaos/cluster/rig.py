"""What every cluster scenario shares: phase timings, polling a blocking check, sales under load, gate counters."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.chaos.checker import cli
from tests.chaos.conftest import OpenSale
from tests.chaos.load import Load
from tests.support.procs import GateProcess
from tests.support.stackctl import StackHandle

RATE_PER_S = 150


class Phases:
    """Seconds each phase of a scenario took, printed as one line (where a slow run spent its time)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.took: list[str] = []

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.took.append(f"{name} {now - self._last:.1f}")
        self._last = now

    def __str__(self) -> str:
        return f"phases (s): {', '.join(self.took)}"


async def eventually(check: Callable[[], bool], *, timeout_s: float, what: str) -> float:
    """Poll a blocking check in a thread (the load keeps running); seconds it took, or fail at the deadline."""
    began = time.monotonic()
    while not await asyncio.to_thread(check):
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.25)
    return time.monotonic() - began


async def start_load(gate: GateProcess, open_sale: OpenSale) -> Load:
    """A fresh SKU and buyers at 150/s through the shared gate, once orders flow."""
    sku = await open_sale(100_000)
    # More buyers than a run needs at 150/s: the load is stopped once orders flow again.
    load = Load(gate.base_url, sku, buyers=20_000, concurrency=32, rate_per_s=150, timeout_s=10)
    await load.flowing()
    return load


async def selling(gate: GateProcess, stack: StackHandle, sku: str) -> Load:
    """A sale of `sku` made with `flashgate sale create`, buyers at RATE_PER_S through the shared gate."""
    await cli(stack, "sale", "create", "--sku", sku, "--name", f"cluster {sku}", "--stock", "100000")
    load = Load(gate.base_url, sku, buyers=20_000, concurrency=32, rate_per_s=RATE_PER_S, timeout_s=10)
    await load.flowing(what=f"orders of {sku} flowing before the fault")
    return load


async def stop_all(*loads: Load) -> None:
    """Stop the loads (buyers under way retry to a final answer): every buyer answered, and with a 202."""
    await asyncio.gather(*(load.stop() for load in loads))
    for load in loads:
        assert not load.unanswered(), load.unanswered()[:3]
        assert load.final_statuses() == {202: len(load.final)}, (load.final_statuses(), load.codes())


def gate_counter(gate: GateProcess, name: str, **labels: str) -> float:
    """The sum of the gate's `name` samples (`…_total`) carrying these labels, from its /metrics now."""
    with urllib.request.urlopen(f"{gate.base_url}/metrics", timeout=5) as res:
        text = res.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )
