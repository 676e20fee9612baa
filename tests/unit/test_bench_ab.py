"""The A/B driver's pure parts: figures of a run, medians, B/A within each round, and its refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.ab import AbError, check_checkout, lines, round_order
from bench.ab_stats import figures, median, ratio, summarize, summary_lines
from bench.cli import bench_group
from bench.flash_sale import open_loop_figures

ROOT = Path(__file__).resolve().parents[2]


def run(rnd: int, variant: str, **figs: float | None) -> dict[str, Any]:
    return {"round": rnd, "variant": variant, "figures": figs}


def test_median_and_ratio_skip_missing_values() -> None:
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([None]) is None
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(2.0, 0.0) is None
    assert ratio(None, 4.0) is None


def test_ratios_are_taken_within_each_round() -> None:
    runs = [run(1, "A", rate=100.0), run(1, "B", rate=110.0),
            run(2, "A", rate=50.0), run(2, "B", rate=60.0),
            run(3, "A", rate=200.0), run(3, "B", rate=180.0)]  # fmt: skip
    s = summarize(runs)["rate"]
    assert s["median_A"] == 100.0
    assert s["median_B"] == 110.0
    assert s["ratios"] == pytest.approx([1.1, 1.2, 0.9])
    # The median of the per-round ratios, not the ratio of the medians (1.1 here by chance).
    assert s["median_ratio"] == pytest.approx(1.1)


def test_a_round_missing_a_variant_gives_no_ratio() -> None:
    s = summarize([run(1, "A", rate=100.0), run(1, "B", rate=90.0), run(2, "A", rate=80.0)])["rate"]
    assert s["ratios"] == pytest.approx([0.9])
    assert s["median_A"] == 90.0
    lines = summary_lines({"rate": s})
    assert lines[1].split()[-1] == "0.900"


def test_figures_flatten_a_flash_sale_result() -> None:
    groups = {name: {"us_per_accepted": float(i)} for i, name in
              enumerate(("gate", "redis", "kafka", "worker", "postgres", "wrk", "total"))}  # fmt: skip
    result = {"gate": {"accepted_per_s": 900.0, "p50_ms": 10.0, "p99_ms": 40.0, "budget": {
        "groups": groups, "redis": {"us_per_accepted": 80.0, "script_us_per_call": 150.0,
                                    "accepted_per_script_call": 4.0}}}}  # fmt: skip
    f = figures(result)
    assert f["accepted/s"] == 900.0
    assert f["p99 ms"] == 40.0
    assert f["µs/202 gate"] == 0.0
    assert f["µs/202 total"] == 6.0
    assert f["µs/202 Redis INFO"] == 80.0
    assert f["202 per script call"] == 4.0


def test_an_open_loop_run_gives_the_figures_a_closed_loop_run_gives() -> None:
    summary = {"offered_per_s": 3000, "answers": {"202": 29_000, "503": 1000}, "accepted_per_s": 2900.0,
               "p50_ms": 20.0, "p99_ms": 45.0}  # fmt: skip
    delta = {"cpu.gate": 8.7, "cpu.redis": 0.9, "redis.cpu": 0.87, "cmd.evalsha.calls": 2900.0,
             "cmd.evalsha.usec": 580_000.0}  # fmt: skip
    gate = open_loop_figures(summary, delta, generator_cpu_s=1.5, wall_s=10.0, stock_left=100,
                             found={"gate": [1, 2], "redis": [3]})  # fmt: skip
    assert (gate["load"], gate["by_status"], gate["stock_left"]) == ("open", {202: 29_000, 503: 1000}, 100)
    f = figures({"gate": gate})
    assert (f["accepted/s"], f["p50 ms"], f["p99 ms"]) == (2900.0, 20.0, 45.0)
    assert f["µs/202 gate"] == pytest.approx(300.0)  # 8.7 s / 29,000 accepted
    assert f["µs/202 wrk"] == pytest.approx(1.5 / 29_000 * 1e6)  # the generator's row: vegeta here
    assert f["µs/202 kafka"] is None  # no broker found: left out, not zero
    assert f["µs/202 Redis INFO"] == pytest.approx(30.0)
    assert f["202 per script call"] == pytest.approx(10.0)


def test_check_checkout_refuses_a_folder_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(AbError, match="not a flashgate checkout"):
        check_checkout(tmp_path)
    repo = Path(__file__).resolve().parents[2]
    assert check_checkout(repo) == repo


def test_cli_ab_refuses_what_cannot_run(tmp_path: Path) -> None:
    env = {"REDIS_URL": "r", "DATABASE_URL": "d", "KAFKA_BOOTSTRAP": ""}
    result = CliRunner().invoke(bench_group, ["ab", "--a", str(tmp_path), "--b", str(tmp_path)], env=env)
    assert result.exit_code == 1
    assert "KAFKA_BOOTSTRAP is not set" in result.output
    result = CliRunner().invoke(bench_group, ["ab", "--a", str(tmp_path), "--b", str(tmp_path), "--rounds", "0"])
    assert result.exit_code == 1
    assert "rounds" in result.output
    env = {"REDIS_URL": "r", "DATABASE_URL": "d", "KAFKA_BOOTSTRAP": "k"}
    result = CliRunner().invoke(
        bench_group, ["ab", "--a", str(tmp_path), "--b", str(tmp_path), "--b-env", "FLASHGATE_GATE_LINGER_MS"], env=env
    )
    assert result.exit_code == 1
    assert "expected NAME=VALUE, not 'FLASHGATE_GATE_LINGER_MS'" in result.output
    result = CliRunner().invoke(bench_group, ["ab", "--a", str(tmp_path), "--b", str(tmp_path), "--b-workers", "0"])
    assert result.exit_code == 1
    assert "b-workers >= 1" in result.output
    result = CliRunner().invoke(
        bench_group, ["ab", "--a", str(tmp_path), "--b", str(tmp_path), "--warmup", "-1"], env=env
    )
    assert result.exit_code == 1
    assert "warmup >= 0" in result.output
    result = CliRunner().invoke(bench_group, ["ab", "--a", str(tmp_path), "--b", str(tmp_path), "--rate", "0"], env=env)
    assert result.exit_code == 1
    assert "rate >= 1" in result.output
    result = CliRunner().invoke(bench_group, ["flash-sale", "--warmup", "-1"], env=env)
    assert result.exit_code == 1
    assert "warmup >= 0" in result.output


def test_lines_name_each_side_s_gate_processes_when_they_differ() -> None:
    record: dict[str, Any] = {"settings": {"a": "/a", "b": "/b", "workers": "2", "b_workers": "1"},
                              "summary": {}, "files": "f.json"}  # fmt: skip
    assert lines(record)[:2] == ["A = /a (gate ×2)", "B = /b (gate ×1)"]
    record["settings"]["b_workers"] = "None"
    assert lines(record)[:2] == ["A = /a", "B = /b"]


def test_cli_app_refuses_what_cannot_run() -> None:
    base = ["app", "--sku", "s"]
    result = CliRunner().invoke(bench_group, [*base, "--concurrency", "0"])
    assert result.exit_code == 1
    assert "concurrency must be >= 1" in result.output
    result = CliRunner().invoke(bench_group, base, env={"REDIS_URL": "r", "KAFKA_BOOTSTRAP": ""})
    assert result.exit_code == 1
    assert "KAFKA_BOOTSTRAP is not set" in result.output


def test_alternate_order_swaps_who_runs_first_every_other_round() -> None:
    assert [round_order("ab", r) for r in (1, 2, 3)] == [("A", "B")] * 3
    assert [round_order("alternate", r) for r in (1, 2, 3, 4)] == [("A", "B"), ("B", "A"), ("A", "B"), ("B", "A")]


def test_script_ab_refuses_a_checkout_without_the_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never reached: the checkouts are checked first
    (tmp_path / "flashgate" / "lua").mkdir(parents=True)
    (tmp_path / "flashgate" / "lua" / "admit.lua").write_text("return {}")
    got = CliRunner().invoke(bench_group, ["script-ab", "--a", str(ROOT), "--b", str(tmp_path), "--lock", ""])
    assert got.exit_code == 1
    assert got.output.startswith("Error: bench script-ab: ")
    assert "has no outbox_ack.lua, outbox_claim.lua under" in got.output


def test_script_ab_refuses_fewer_calls_than_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    got = CliRunner().invoke(
        bench_group, ["script-ab", "--a", str(ROOT), "--b", str(ROOT), "--calls", "2", "--callers", "4"]
    )
    assert got.exit_code == 1
    assert "calls >= callers >= 1" in got.output
