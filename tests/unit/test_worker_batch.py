"""Pure batch decisions: decoding, in-batch redelivery, fitting to stock, commit positions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from flashgate.events import encode
from flashgate.settings import ConfigError
from tests.support.orders import batch, order
from worker.batch import (
    TRACES_LOGGED,
    Incoming,
    OrderRow,
    commit_positions,
    fit_to_stock,
    fits_whole,
    plan_batch,
    traced,
)
from worker.main import consumer_config
from worker.settings import WorkerSettings

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def msg(value: bytes | None, offset: int = 0, partition: int = 0) -> Incoming:
    return Incoming("orders", partition, offset, None, value)


def row(sku: str, qty: int, n: int) -> OrderRow:
    return OrderRow(uuid.uuid4(), sku, "u", qty, f"k{n}", T0 + timedelta(milliseconds=n), 0, n)


def test_plan_splits_orders_and_poison() -> None:
    a, b = order(), order()
    plan = plan_batch([msg(encode(a), 0), msg(b"{oops", 1), msg(None, 2), msg(encode(b), 3)])
    assert [o.order_id for o in plan.orders] == [a.order_id, b.order_id]
    assert [(p.message.offset, p.error.split(":")[0]) for p in plan.poison] == [
        (1, "EventDecodeError"),
        (2, "empty message value"),
    ]
    assert plan.orders[1].offset == 3


def test_plan_keeps_first_copy_of_a_redelivered_order() -> None:
    a = order()
    plan = plan_batch([msg(encode(a), 5), msg(encode(a), 9)])
    assert len(plan.orders) == 1
    assert plan.orders[0].offset == 5
    assert plan.redelivered == 1


def test_plan_takes_the_trace_id_from_a_valid_traceparent_header() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    header = f"00-{trace}-00f067aa0ba902b7-01".encode()
    a, b, c = order(), order(), order()
    plan = plan_batch([
        Incoming("orders", 0, 0, None, encode(a), header),
        Incoming("orders", 0, 1, None, encode(b)),
        Incoming("orders", 0, 2, None, encode(c), b"00-not-a-traceparent"),
    ])  # fmt: skip
    assert [o.trace_id for o in plan.orders] == [uuid.UUID(hex=trace), None, None]
    assert traced(plan) == f" traces={trace}"


def test_the_batch_line_names_a_few_trace_ids_and_counts_the_rest() -> None:
    ids = [uuid.uuid4() for _ in range(TRACES_LOGGED + 3)]
    plan = plan_batch([
        Incoming("orders", 0, n, None, encode(order()), f"00-{t.hex}-00f067aa0ba902b7-01".encode())
        for n, t in enumerate(ids)
    ])  # fmt: skip
    assert traced(plan) == " traces=" + ",".join(t.hex for t in ids[:TRACES_LOGGED]) + ",+3"
    assert traced(plan_batch([msg(encode(order()))])) == ""


def test_plan_flags_unknown_schema_version() -> None:
    raw = msgspec.json.decode(encode(order()))
    raw["schema_version"] = 99
    plan = plan_batch([msg(msgspec.json.encode(raw))])
    assert plan.poison[0].error.startswith("UnknownSchemaVersion")


def test_plan_takes_every_order_of_a_version_2_message_with_its_own_trace() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    a, b, c = order("S", qty=2), order("S"), order("S")
    message = batch(a, b, c, traces={b.order_id: f"00-{trace}-00f067aa0ba902b7-01", c.order_id: "00-not-valid"})
    plan = plan_batch([msg(encode(order("T")), 3), msg(encode(message), 4, partition=2)])
    assert [(o.order_id, o.sku, o.qty, o.offset, o.partition) for o in plan.orders[1:]] == [
        (a.order_id, "S", 2, 4, 2),
        (b.order_id, "S", 1, 4, 2),
        (c.order_id, "S", 1, 4, 2),
    ]
    assert {o.accepted_at for o in plan.orders[1:]} == {a.accepted_at}
    assert [o.trace_id for o in plan.orders[1:]] == [None, uuid.UUID(hex=trace), None]
    assert plan.traceparents == [f"00-{trace}-00f067aa0ba902b7-01", "00-not-valid"]  # the batch span's links
    assert plan.poison == []


def test_an_order_in_both_versions_is_planned_once() -> None:
    # A relay of an earlier gate sends version 1, this gate version 2: the worker keeps the first copy.
    a, b = order(), order()
    plan = plan_batch([msg(encode(a), 1), msg(encode(batch(a, b)), 2), msg(encode(batch(b)), 3)])
    assert [(o.order_id, o.offset) for o in plan.orders] == [(a.order_id, 1), (b.order_id, 2)]
    assert plan.redelivered == 2


@pytest.mark.parametrize(
    "change",
    [
        {"orders": []},
        {"accepted_at": "2026-11-21T12:00:00"},
        {"sku": "no spaces"},
        {"schema_version": 3},
    ],
)
def test_a_malformed_version_2_message_is_poison_whole(change: dict[str, object]) -> None:
    raw = msgspec.json.decode(encode(batch(order(), order())))
    raw.update(change)
    plan = plan_batch([msg(msgspec.json.encode(raw), 7)])
    assert plan.orders == []
    assert [p.message.offset for p in plan.poison] == [7]


def test_one_bad_order_makes_its_version_2_message_poison() -> None:
    raw = msgspec.json.decode(encode(batch(order(), order())))
    raw["orders"][1]["qty"] = 0
    plan = plan_batch([msg(msgspec.json.encode(raw), 7)])
    assert plan.orders == []
    assert "qty" in plan.poison[0].error


def test_fit_admits_in_admission_order_until_stock_runs_out() -> None:
    rows = [row("S", 2, 3), row("S", 2, 1), row("S", 2, 2), row("T", 1, 4)]
    result = fit_to_stock(rows, {"S": 5, "T": 1})
    assert [r.offset for r in result.insert] == [1, 2, 4]
    assert [(r.offset, reason) for r, reason in result.refuse] == [(3, "oversell")]


def test_fit_lets_a_smaller_order_use_what_is_left() -> None:
    rows = [row("S", 3, 1), row("S", 1, 2)]
    result = fit_to_stock(rows, {"S": 2})
    assert [r.qty for r in result.insert] == [1]
    assert [r.qty for r, _ in result.refuse] == [3]


def test_fit_refuses_unknown_sku() -> None:
    result = fit_to_stock([row("GHOST", 1, 1)], {})
    assert result.insert == []
    assert result.refuse[0][1] == "unknown_sku"


@pytest.mark.parametrize("left", [0, 1, 7])
def test_fit_never_exceeds_stock(left: int) -> None:
    rows = [row("S", 1 + n % 3, n) for n in range(20)]
    result = fit_to_stock(rows, {"S": left})
    assert sum(r.qty for r in result.insert) <= left
    assert len(result.insert) + len(result.refuse) == len(rows)


@pytest.mark.parametrize(
    ("orders", "remaining", "fits"),
    [
        ([("S", 2), ("S", 3), ("T", 1)], {"S": 5, "T": 1}, True),  # exactly the units left
        ([("S", 2), ("S", 4)], {"S": 5}, False),  # the sum passes what is left, each alone does not
        ([("S", 1), ("GHOST", 1)], {"S": 5}, False),  # no product row
        ([], {}, True),
    ],
)
def test_fits_whole_sums_each_sku(orders: list[tuple[str, int]], remaining: dict[str, int], fits: bool) -> None:
    assert fits_whole([row(sku, qty, n) for n, (sku, qty) in enumerate(orders)], remaining) is fits


@pytest.mark.parametrize("left", [0, 1, 7])
def test_fits_whole_agrees_with_fit_to_stock(left: int) -> None:
    rows = [row("S", 1 + n % 3, n) for n in range(4)]
    admitted_all = not fit_to_stock(rows, {"S": left}).refuse
    assert fits_whole(rows, {"S": left}) is admitted_all


def test_commit_positions_are_one_past_the_highest_offset() -> None:
    msgs = [msg(b"", 4, 0), msg(b"", 2, 0), msg(b"", 7, 1)]
    assert commit_positions(msgs) == {("orders", 0): 5, ("orders", 1): 8}


def test_settings_from_env_and_overrides() -> None:
    env = {"DATABASE_URL": "postgresql://x", "KAFKA_BOOTSTRAP": "k:1", "FLASHGATE_WORKER_BATCH_MAX_ROWS": "10"}
    s = WorkerSettings.from_env({"batch_max_wait_ms": 5, "topic": None}, env=env)
    assert (s.batch_max_rows, s.batch_max_wait_ms, s.topic) == (10, 5, "orders")
    assert replace(s, batch_max_rows=3).batch_max_rows == 3
    fetch = consumer_config(WorkerSettings.from_env(env={**env, "FLASHGATE_WORKER_FETCH_WAIT_MAX_MS": "10"}))
    assert (fetch["fetch.min.bytes"], fetch["fetch.wait.max.ms"]) == (65_536, 10)
    assert s.metrics_host == "127.0.0.1"  # loopback unless told: the image says 0.0.0.0
    assert WorkerSettings.from_env(env={**env, "FLASHGATE_WORKER_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        ({"FLASHGATE_WORKER_BATCH_MAX_ROWS": "many"}, "BATCH_MAX_ROWS='many': expected `int`"),
        ({"FLASHGATE_WORKER_BATCH_MAX_ROWS": "0"}, "BATCH_MAX_ROWS='0': expected `int` >= 1"),
        ({"FLASHGATE_WORKER_POOL_MIN_SIZE": "5"}, "need FLASHGATE_WORKER_POOL_MIN_SIZE <= FLASHGATE_WORKER_POOL_MAX"),
        ({"FLASHGATE_WORKER_BATCHES_IN_FLIGHT": "0"}, "BATCHES_IN_FLIGHT='0': expected `int` >= 1"),
        ({"FLASHGATE_WORKER_FETCH_MIN_BYTES": "0"}, "FETCH_MIN_BYTES"),
        ({"FLASHGATE_WORKER_FETCH_WAIT_MAX_MS": "-1"}, "FLASHGATE_WORKER_FETCH_WAIT_MAX_MS='-1': expected `int` >= 0"),
    ],
)
def test_bad_settings(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WorkerSettings.from_env(env={"DATABASE_URL": "x", "KAFKA_BOOTSTRAP": "k", **env})


def test_every_refusal_reason_is_a_metric_label_present_from_the_start() -> None:
    from worker.metrics import REFUSAL_REASONS

    result = fit_to_stock([row("S", 2, 1), row("GHOST", 1, 2)], {"S": 1})
    assert {reason for _, reason in result.refuse} == set(REFUSAL_REASONS)
