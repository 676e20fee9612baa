"""`flashgate bench flash-sale`'s closed loop (wrk) on a served gate: a warm-up's orders are not measured again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.flash_sale import FlashSaleSettings, closed_loop_gate
from bench.wrk import run_wrk
from tests.support.gatekit import open_sale
from tests.support.procs import GateProcess
from tests.support.sales import Sale
from tests.support.stackctl import StackHandle


def test_the_measured_run_places_new_orders_after_its_warm_up(stack: StackHandle, name: str, tmp_path: Path) -> None:
    asyncio.run(open_sale(stack, Sale(sku=name, units=1_000_000)))
    gate = GateProcess.start(stack, tmp_path / "gate.log", workers=1)
    try:
        s = FlashSaleSettings(gate_url=gate.base_url, redis_url=stack.redis_url, database_url=stack.database_url,
                              stock=1_000_000, duration_s=1, warmup_s=1, connections=4, workers=1, bare=False,
                              out_dir=tmp_path, save=False)  # fmt: skip
        measured = closed_loop_gate(s, name, {})
        assert measured["accepted"] > 0
        assert (measured["replayed_202"], measured["by_status"][202]) == (0, measured["accepted"])
        assert measured["budget"]["accepted"] == measured["accepted"]
        # The same keys twice: the second run's first requests replay the first's, and are counted apart.
        again = run_wrk(gate.base_url, sku=name, users=s.users, connections=4, threads=1, duration_s=1,
                        label="keys of the measured run again")  # fmt: skip
        figures = again.result
        assert figures["replayed_202"] > 0
    finally:
        gate.close()
