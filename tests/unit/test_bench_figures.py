"""The flash-sale harness's pure arithmetic and its refusals of bad options (no services needed)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from bench.cli import bench_group
from bench.figures import load_figures


def raw(per_second: dict[str, int], *, first: float, last_202: float, duration_s: float) -> dict[str, Any]:
    return {
        "duration_us": int(duration_s * 1e6),
        "requests": sum(per_second.values()),
        "bytes": 0,
        "errors": {"connect": 0, "read": 1, "write": 0, "status": 0, "timeout": 2},
        "latency_us": {"p50": 1000, "p90": 2000, "p99": 5000, "p999": 9000, "max": 12000, "mean": 1500.0},
        "first_request_t": first,
        "last_202_t": last_202,
        "per_second": per_second,
        "server_errors": {"redis_unavailable": 5},
    }


def test_sold_out_run_splits_selling_and_sold_out_phases() -> None:
    # 4 s run from t=100.5: 202s until 101.5, then 409s; seconds 102 and 103 are whole sold-out seconds.
    per_second = {"100:202": 600, "101:202": 400, "101:409": 100, "102:409": 3000, "103:409": 3200,
                  "104:409": 900, "101:503": 5}  # fmt: skip
    f = load_figures(raw(per_second, first=100.5, last_202=101.5, duration_s=4.0), sold_out=True)
    assert f.by_status == {202: 1000, 409: 7200, 503: 5}
    assert f.time_to_sell_out_s == pytest.approx(1.0)
    assert f.accepted_per_s == pytest.approx(1000.0)
    assert f.sold_out_phase_per_s == pytest.approx(3100.0)
    assert f.sold_out_at_s == pytest.approx(1.5)
    assert f.errors == 3 + 5
    assert (f.p50_ms, f.p99_ms, f.max_ms) == (1.0, 5.0, 12.0)
    assert f.series[0] == {"t": 0, "202": 600}


def test_run_that_did_not_sell_out_rates_over_the_whole_run() -> None:
    f = load_figures(raw({"10:202": 500, "11:202": 700}, first=10.2, last_202=11.9, duration_s=2.0), sold_out=False)
    assert f.accepted_per_s == pytest.approx(600.0)
    assert f.time_to_sell_out_s is None
    assert f.sold_out_phase_per_s is None


def test_replayed_202s_are_not_accepted_orders() -> None:
    f = load_figures({**raw({"10:202": 500, "11:202": 700}, first=10.2, last_202=11.9, duration_s=2.0),
                      "replayed_202": 200}, sold_out=False)  # fmt: skip
    assert (f.by_status[202], f.accepted, f.replayed_202) == (1200, 1000, 200)
    assert f.accepted_per_s == pytest.approx(500.0)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["flash-sale", "--connections", "0"], {"REDIS_URL": "r", "DATABASE_URL": "d"}, "connections >= threads"),
        (["flash-sale"], {"REDIS_URL": "", "DATABASE_URL": "d"}, "REDIS_URL is not set"),
        (["drain", "--orders", "0"], {"KAFKA_BOOTSTRAP": "k", "DATABASE_URL": "d"}, "must be >= 1"),
        (["drain", "--orders-per-message", "0"], {"KAFKA_BOOTSTRAP": "k", "DATABASE_URL": "d"}, "must be >= 1"),
        (["drain", "--orders-per-message", "4097"], {"KAFKA_BOOTSTRAP": "k", "DATABASE_URL": "d"}, "must be <= 4096"),
    ],
)
def test_cli_refuses_what_cannot_run(args: list[str], env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(bench_group, args, env=env)
    assert result.exit_code == 1
    assert message in result.output
