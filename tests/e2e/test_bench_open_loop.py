"""`flashgate bench open-loop` on a served gate: vegeta places real orders, and a missed threshold exits 1."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.support.gatekit import open_sale
from tests.support.procs import GateProcess
from tests.support.sales import Sale
from tests.support.stackctl import FLASHGATE, StackHandle


def test_open_loop_meets_loose_thresholds_and_fails_on_a_missed_one(
    stack: StackHandle, name: str, tmp_path: Path
) -> None:
    asyncio.run(open_sale(stack, Sale(sku=name, units=100_000)))
    gate = GateProcess.start(stack, tmp_path / "gate.log", workers=1)
    try:
        base = [FLASHGATE, "bench", "open-loop", "--gate-url", gate.base_url, "--sku", name, "--rate", "50",
                "--duration", "2", "--out", str(tmp_path)]  # fmt: skip
        met = subprocess.run([*base, "--max-p99-ms", "20000"], capture_output=True, text=True, timeout=120, check=False)
        assert met.returncode == 0, met.stdout + met.stderr
        assert "offered 50/s for 2 s: 100 requests, answers {'202': 100}" in met.stdout
        assert "thresholds: met" in met.stdout
        assert " 1 s: " in met.stdout  # live progress, once a second
        missed = subprocess.run([*base, "--min-accepted-per-s", "1000000"], capture_output=True, text=True,
                                timeout=120, check=False)  # fmt: skip
        assert missed.returncode == 1, missed.stdout + missed.stderr
        assert "thresholds: MISSED: accepted 50/s < 1,000,000/s" in missed.stdout
        assert len(list(tmp_path.glob("open-loop-*.json"))) == 2
    finally:
        gate.close()
