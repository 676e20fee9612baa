"""The soak run's pure parts: samples → summary → verdict, answer labels, the report (no services needed)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from bench.cli import bench_group
from bench.soak import Tally
from bench.soak_figures import MIB, Limits, fitted_growth, judge, passed, report_lines, summarize

RATE, TTL, DURATION = 100.0, 60.0, 600.0
LIMITS = Limits()
DRAINED = {"ok": True, "detail": "6,000 rows for 6,000 admitted"}


def sample(t: float, **over: Any) -> dict[str, Any]:
    """A healthy sample at t: flat RSS, keyspace at rate × TTL once t >= TTL, a small outbox, all 202."""
    sent = int(RATE * t)
    s: dict[str, Any] = {
        "t_s": t,
        "procs": {
            "10": {"role": "gate", "rss": 60 * MIB},
            "11": {"role": "gate worker", "rss": 80 * MIB},
            "20": {"role": "worker", "rss": 70 * MIB},
        },
        "redis": {
            "dbsize": 10 + int(RATE * min(t, TTL)),
            "expires": int(RATE * min(t, TTL)),
            "used_memory": 5 * MIB + 200 * sent,
            "used_memory_rss": 0,
            "bought_bytes": 50 * sent,
            "index_bytes": 150 * sent,
        },
        "outbox": {"now": 3, "max": 12},
        "admitted": sent,
        "rows": max(0, sent - 5),
        "sent": sent,
        "answers": {"202 accepted": sent} if sent else {},
        "latency_ms": {"p50": 20.0, "p99": 60.0, "max": 90.0} if sent else {"p50": None, "p99": None, "max": None},
        "generator": {"cpu_s": 1.0 + sent * 50e-6, "late_max_ms": 3.0},
        "loadavg_1m": 1.5 + t / 600,
    }
    s.update(over)
    return s


def run(samples: list[dict[str, Any]], drained: dict[str, Any] = DRAINED) -> tuple[dict[str, Any], dict[str, bool]]:
    summary = summarize(samples, rate_per_s=RATE, idem_ttl_s=TTL, duration_s=DURATION, limits=LIMITS)
    checks = judge(summary, drained, rate_per_s=RATE, limits=LIMITS)
    return summary, {c.name: c.ok for c in checks}


def healthy() -> list[dict[str, Any]]:
    return [sample(float(t)) for t in range(0, 601, 60)]


def grow(samples: list[dict[str, Any]], pid: str, mib_per_s: float) -> None:
    for s in samples:
        s["procs"] = {
            **s["procs"],
            pid: {**s["procs"][pid], "rss": s["procs"][pid]["rss"] + s["t_s"] * mib_per_s * MIB},
        }


def test_fitted_growth_is_slope_times_span() -> None:
    assert fitted_growth([(0, 10), (10, 20), (20, 30)]) == pytest.approx(20)
    assert fitted_growth([(0, 10), (10, 40), (20, 30)]) == pytest.approx(20)  # one high sample in the middle
    assert fitted_growth([(5, 1)]) == 0.0
    assert fitted_growth([(5, 1), (5, 9)]) == 0.0


def test_a_healthy_run_passes_every_check() -> None:
    summary, ok = run(healthy())
    assert all(ok.values()), ok
    p = summary["processes"]["11"]
    assert (p["role"], p["first_mib"], p["first_t_s"], p["mid_mib"], p["last_mib"]) == ("gate worker", 80, 60, 80, 80)
    assert summary["keyspace"]["bound"] == pytest.approx(10 + RATE * TTL * 1.2)
    assert summary["keyspace"]["last_third_max"] == 10 + RATE * TTL
    assert summary["outbox_max"] == 12
    assert summary["worker_lag_max"] == 5
    assert summary["generator"]["cpu_us_per_order"] == pytest.approx(50)


def test_rss_growth_over_the_second_half_fails_only_that_process() -> None:
    samples = healthy()
    grow(samples, "11", 10 / 300)  # 10 MiB over the 300 s of the second half
    summary, ok = run(samples)
    assert summary["processes"]["11"]["growth_second_half_mib"] == pytest.approx(10)
    assert summary["processes"]["10"]["growth_second_half_mib"] == pytest.approx(0)
    assert not ok["rss"]
    assert ok["processes"]


def test_growth_in_the_first_half_only_is_warm_up_not_a_leak() -> None:
    samples = healthy()
    for s in samples:
        s["procs"]["20"] = {"role": "worker", "rss": (70 + min(s["t_s"], 240) / 10) * MIB}
    assert run(samples)[1]["rss"]


def test_a_process_that_appears_in_the_second_half_fails() -> None:
    samples = healthy()
    for s in samples[-3:]:
        s["procs"] = {**s["procs"], "12": {"role": "gate worker", "rss": 80 * MIB}}
    summary, ok = run(samples)
    assert not summary["processes"]["12"]["in_every_second_half_sample"]
    assert not ok["processes"]


def test_keyspace_that_keeps_growing_fails() -> None:
    samples = healthy()
    for s in samples:
        # Below the bound all along, but still rising by 10 keys/s over the last third.
        s["redis"] = {**s["redis"], "dbsize": 5010 + 10 * int(max(0.0, s["t_s"] - 400))}
    summary, ok = run(samples)
    assert summary["keyspace"]["last_third_max"] < summary["keyspace"]["bound"]
    assert summary["keyspace"]["last_third_growth"] > summary["keyspace"]["growth_allowed"]
    assert not ok["keyspace"]


def test_the_bound_counts_from_the_keys_without_ttl_so_a_previous_runs_keys_do_not_loosen_it() -> None:
    samples = healthy()
    samples[0]["redis"] = {**samples[0]["redis"], "dbsize": 10 + 50_000, "expires": 50_000}  # still expiring
    summary = run(samples)[0]
    assert summary["keyspace"]["start"] == 10
    assert summary["keyspace"]["bound"] == pytest.approx(10 + RATE * TTL * 1.2)


def test_keyspace_above_the_bound_fails() -> None:
    samples = healthy()
    samples[-1]["redis"] = {**samples[-1]["redis"], "dbsize": int(10 + RATE * TTL * 1.3)}
    assert not run(samples)[1]["keyspace"]


def test_keyspace_cannot_be_shown_when_the_ttl_is_longer_than_half_the_run() -> None:
    summary = summarize(healthy(), rate_per_s=RATE, idem_ttl_s=DURATION, duration_s=DURATION, limits=LIMITS)
    checks = {c.name: c for c in judge(summary, DRAINED, rate_per_s=RATE, limits=LIMITS)}
    assert not checks["keyspace"].ok
    assert "FLASHGATE_IDEM_TTL_S" in checks["keyspace"].detail


@pytest.mark.parametrize(
    ("answers", "failed"),
    [
        ({"202 accepted": 900, "503 redis_unavailable": 1}, {"errors", "answers"}),
        ({"202 accepted": 900, "transport ConnectionResetError": 1}, {"errors", "answers"}),
        ({"202 accepted": 900, "409 sold_out": 1}, {"answers"}),
        ({"202 accepted": 900, "202 queued": 3}, set()),
    ],
)
def test_answers_other_than_202_fail(answers: dict[str, int], failed: set[str]) -> None:
    samples = healthy()
    samples[-1]["answers"] = answers
    ok = run(samples)[1]
    assert {name for name, good in ok.items() if not good} == failed


def test_outbox_above_one_second_of_orders_fails() -> None:
    samples = healthy()
    samples[4]["outbox"] = {"now": 0, "max": int(RATE) + 1}
    assert not run(samples)[1]["outbox"]


def test_not_drained_fails() -> None:
    assert not run(healthy(), {"ok": False, "detail": "not drained after 300 s"})[1]["persisted"]


def test_report_lines_name_every_process_and_the_verdict() -> None:
    samples = healthy()
    summary = summarize(samples, rate_per_s=RATE, idem_ttl_s=TTL, duration_s=DURATION, limits=LIMITS)
    checks = judge(summary, DRAINED, rate_per_s=RATE, limits=LIMITS)
    result = {"sku": "soak-x", "idem_ttl_s": TTL, "summary": summary, "passed": passed(checks),
              "machine": {"cores": 2},
              "settings": {"rate_per_s": RATE, "duration_s": DURATION, "sample_every_s": 60},
              "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]}  # fmt: skip
    text = "\n".join(report_lines(result))
    assert "verdict: PASS" in text
    assert "load average 1.5..2.5 (2 cores)" in text
    for pid in ("10", "11", "20"):
        assert f" {pid} " in text


def test_tally_labels_answers_by_status_and_problem_code() -> None:
    t = Tally()
    t.answer(202, b'{"order_id":"o","sku":"s","qty":1,"status":"accepted"}', 0.010)
    t.answer(202, b'{"order_id":"o","sku":"s","qty":1,"status":"queued"}', 0.030)
    t.answer(503, b'{"type":"t","title":"x","status":503,"code":"redis_unavailable"}', 0.250)
    t.answer(431, b"", 0.001)
    assert t.answers == {"202 accepted": 1, "202 queued": 1, "503 redis_unavailable": 1, "431": 1}
    assert t.interval_latency_ms()["max"] == pytest.approx(250)
    assert t.interval_latency_ms() == {"p50": None, "p99": None, "max": None}


@pytest.mark.parametrize(
    "args",
    [["soak", "--rate", "0"], ["soak", "--duration", "60", "--sample-every", "120"], ["soak", "--connections", "0"]],
)
def test_cli_refuses_what_cannot_run(args: list[str]) -> None:
    result = CliRunner().invoke(bench_group, args, env={"REDIS_URL": "r", "DATABASE_URL": "d", "KAFKA_BOOTSTRAP": "k"})
    assert result.exit_code == 1
    assert "sample-every <= duration" in result.output
