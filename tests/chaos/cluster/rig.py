"""What every cluster scenario shares: phase timings, polling a blocking check, a sale under buyer load."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.chaos.conftest import OpenSale
from tests.chaos.load import Load
from tests.support.poll import until
from tests.support.procs import GateProcess


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
    """Poll a blocking check in a thread every 0.25 s (the load keeps running); seconds it took, or fail."""
    return await until(check, timeout_s=timeout_s, what=what, in_thread=True, interval_s=0.25)


async def start_load(gate: GateProcess, open_sale: OpenSale) -> Load:
    """A fresh SKU and buyers at 150/s through the shared gate, once orders flow."""
    sku = await open_sale(100_000)
    # More buyers than a run needs at 150/s: the load is stopped once orders flow again.
    load = Load(gate.base_url, sku, buyers=20_000, concurrency=32, rate_per_s=150, timeout_s=10)
    await load.flowing()
    return load
