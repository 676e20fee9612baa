"""bench/open_loop.py's pure parts: latency from when a request was due, whole seconds only, the verdict."""

from __future__ import annotations

import json
from itertools import islice

import pytest

from bench.open_loop import (
    Hit,
    OpenLoopError,
    OpenLoopSettings,
    corrected_ms,
    parse_hit,
    percentile,
    summarize,
    targets,
    vegeta,
    verdict,
    whole_seconds,
)

S = OpenLoopSettings(gate_url="http://g:1/", sku="S", rate=10, duration_s=2, users=3)
MS = 1_000_000


def test_a_request_sent_late_counts_its_wait_from_when_it_was_due() -> None:
    # seq 0 due and sent at 0; seq 1 due at 100 ms but sent at 300 ms (every worker busy): 200 ms hidden.
    hits = [Hit(0, 0, 5 * MS, 202), Hit(1, 300 * MS, 5 * MS, 202), Hit(2, 200 * MS, 5 * MS, 202)]
    assert corrected_ms(hits, 10) == [5.0, 205.0, 5.0]
    assert corrected_ms([], 10) == []


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([], 99) == 0.0


def test_the_last_partial_second_is_left_out_of_every_rate() -> None:
    hits = [Hit(seq, 0, MS, 202 if seq % 2 else 409) for seq in range(25)]  # 2.5 seconds at 10/s
    seconds = whole_seconds(hits, 10)
    assert [sum(s.values()) for s in seconds] == [10, 10]
    summary = summarize(hits, S)
    assert (summary["whole_seconds"], summary["accepted_per_s"], summary["answers_per_s"]) == (2, 5.0, 10.0)
    assert summary["answers"] == {"202": 12, "409": 13}


def test_the_verdict_names_each_threshold_missed() -> None:
    summary = {"p99_ms": 80.0, "accepted_per_s": 900.0}
    assert verdict(summary, S) == []
    strict = OpenLoopSettings(gate_url="g", sku="S", rate=10, duration_s=1, max_p99_ms=50, min_accepted_per_s=1000)
    assert verdict(summary, strict) == ["p99 80.0 ms > 50 ms", "accepted 900/s < 1,000/s"]


def test_targets_are_orders_with_fresh_keys_and_cycling_buyers() -> None:
    made = [json.loads(t) for t in islice(targets(S, "r"), 4)]
    assert {t["url"] for t in made} == {"http://g:1/v1/orders"}
    assert [t["header"]["X-User-Id"][0] for t in made] == ["ol-r-0", "ol-r-1", "ol-r-2", "ol-r-0"]
    assert len({t["header"]["Idempotency-Key"][0] for t in made}) == 4


def test_a_vegeta_csv_row_is_read_by_position() -> None:
    row = ["1796089766288998574", "202", "2438995", "25", "150", "", "", "", "7", "POST", "http://g/v1/orders", ""]
    assert parse_hit(row) == Hit(seq=7, sent_ns=1796089766288998574, latency_ns=2438995, code=202)


def test_no_vegeta_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("FLASHGATE_VEGETA", "/nonexistent/vegeta")
    monkeypatch.setattr("bench.open_loop.REPO", tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(OpenLoopError, match="run make bootstrap"):
        vegeta()


def test_the_flash_sale_chart_leaves_out_the_last_partial_second() -> None:
    from bench.chart import whole_seconds as chart_seconds

    series = [{"t": 0, "202": 100}, {"t": 1, "202": 100}, {"t": 2, "202": 3}]
    assert chart_seconds(series) == series[:2]
    assert chart_seconds(series[:1]) == series[:1]
