"""`bench/broker_cost.py` on the stack's broker: every order produced and delivered, in messages of the asked size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.stackctl import StackHandle

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.broker_cost", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_each_variant_delivers_every_order_in_messages_of_its_size(stack: StackHandle, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP": stack.kafka_bootstrap}
    done = run(
        ["--per-message", "1,5", "--rate", "500", "--seconds", "1", "--rounds", "1", "--out", str(tmp_path)], env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("broker-cost-*.json")]
    by_size = {r["per_message"]: r for r in record["runs"]}
    for size, r in by_size.items():
        assert r["undelivered"] == 0
        assert r["orders"] == r["messages"] * size >= 500
        assert r["produce_requests"] > 0
        assert r["broker_cpu_s"] >= 0
    assert "median" in done.stdout


def test_it_refuses_what_cannot_run(stack: StackHandle) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    unset = run([], env)
    assert (unset.returncode, unset.stderr.strip()) == (
        1,
        'broker_cost: KAFKA_BOOTSTRAP is not set (eval "$(flashgate stack env)")',
    )
    zero = run(["--per-message", "0"], {**env, "KAFKA_BOOTSTRAP": stack.kafka_bootstrap})
    assert (zero.returncode, zero.stderr.strip()) == (
        1,
        "broker_cost: --per-message, --rate, --rounds and --producers must be >= 1, --seconds > 0",
    )
