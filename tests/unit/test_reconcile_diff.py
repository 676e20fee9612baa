"""The reconciler's pure parts: diff (count once, snapshot time, cap, config), judge, render, inputs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from flashgate.fingerprint import DEFAULT_IDEM_TTL_S
from flashgate.settings import ConfigError
from gate.settings import GateSettings
from reconcile.diff import diff
from reconcile.errors import ReconcileError
from reconcile.model import OrderRef, Recorded, RedisSnapshot, SkuInputs, from_us, to_us
from reconcile.products import Product
from reconcile.render import as_json, table
from reconcile.settings import ReconcileSettings
from reconcile.verify import RecordFacts, judge, parse_order_ids

T = 1_800_000_000_000_000  # snapshot time, µs


def product(units: int = 10, **kw: object) -> Product:
    values: dict[str, object] = {
        "sku": "s", "name": "n", "units_on_sale": units, "units_sold": 0, "per_user_limit": None,
        "starts_at": None, "ends_at": None, "rate_per_s": None, "burst": None, "closed_at": None,
    }  # fmt: skip
    return Product(**{**values, **kw})  # type: ignore[arg-type]


def ref(user: str = "u", *, qty: int = 1, at: int = T - 1, key: str | None = None, oid: str | None = None) -> OrderRef:
    return OrderRef(oid or str(uuid.uuid4()), user, key or uuid.uuid4().hex, qty, at)


def inputs(
    *,
    units: int = 10,
    stock: int | None = 10,
    bought: dict[str, int] | None = None,
    outbox: list[OrderRef] | None = None,
    backlog: list[OrderRef] | None = None,
    recorded: Recorded | None = None,
    sale: dict[str, str] | None = None,
    **product_kw: object,
) -> SkuInputs:
    p = product(units, **product_kw)
    snap = RedisSnapshot(
        taken_at_us=T,
        sale=p.sale_config().to_redis() if sale is None else sale,
        stock=stock,
        bought=bought or {},
        outbox=outbox or [],
    )
    return SkuInputs(p, snap, backlog or [], recorded or Recorded({}, 0))


def test_a_consistent_sale_does_not_drift() -> None:
    d = diff(inputs(units=10, stock=7, bought={"a": 2, "b": 1}, recorded=Recorded({"a": 2, "b": 1}, 3)))
    assert (d.expected_stock, d.stock_drift, d.drifted) == (7, 0, False)


def test_in_flight_and_outbox_orders_count_as_taken() -> None:
    d = diff(inputs(units=10, stock=6, bought={"a": 4}, outbox=[ref("a")], backlog=[ref("a", qty=3)]))
    assert (d.units_sold, d.in_flight, d.outbox, d.expected_stock, d.drifted) == (0, 3, 1, 6, False)


def test_an_order_is_counted_once_across_outbox_kafka_and_rows() -> None:
    o = ref("a", qty=2)
    twice_in_kafka = [o, o]
    d = diff(inputs(units=10, stock=8, bought={"a": 2}, outbox=[o], backlog=twice_in_kafka))
    assert (d.in_flight, d.outbox, d.expected_stock, d.drifted) == (0, 2, 8, False)
    recorded = Recorded({"a": 2}, 2, ids=frozenset({o.order_id}), identities=frozenset({o.identity}))
    d = diff(inputs(units=10, stock=8, bought={"a": 2}, outbox=[o], backlog=[o], recorded=recorded))
    assert (d.units_sold, d.in_flight, d.outbox, d.drifted) == (2, 0, 0, False)


def test_a_second_order_id_for_a_recorded_key_is_not_in_flight() -> None:
    first = ref("a", key="k")
    retry = ref("a", key="k")  # same (user, key), new id: the database drops it as a duplicate
    recorded = Recorded({"a": 1}, 1, ids=frozenset({first.order_id}), identities=frozenset({first.identity}))
    d = diff(inputs(units=10, stock=8, bought={"a": 2}, backlog=[retry], recorded=recorded))
    assert (d.in_flight, d.expected_stock, d.stock_drift, d.user_drifts) == (0, 9, -1, {"a": (2, 1)})


def test_orders_admitted_after_the_snapshot_are_not_counted() -> None:
    late = ref("a", at=T + 5)
    d = diff(inputs(units=10, stock=10, backlog=[late]))
    assert (d.in_flight, d.expected_stock, d.drifted) == (0, 10, False)
    assert d.cap == 9  # but what is provably left knows about it


def test_drift_both_ways_and_per_buyer() -> None:
    d = diff(inputs(units=10, stock=9, bought={"a": 1, "ghost": 2}, recorded=Recorded({"a": 2}, 2)))
    assert (d.expected_stock, d.stock_drift) == (8, 1)
    assert d.user_drifts == {"a": (1, 2), "ghost": (2, 0)}
    assert d.expected_bought == {"a": 2}


def test_missing_sale_and_missing_stock_drift() -> None:
    d = diff(inputs(stock=None, sale={}))
    assert (d.redis_has_sale, d.drifted, d.config_drifts) == (False, True, [])
    assert diff(inputs(stock=None)).drifted


def test_config_drift_compares_numbers_not_strings() -> None:
    p = product(rate_per_s=5.0, burst=5, per_user_limit=2)
    sale = {**p.sale_config().to_redis(), "rate_per_s": "5", "per_user_limit": "3"}
    d = diff(inputs(rate_per_s=5.0, burst=5, per_user_limit=2, sale=sale))
    assert [(c.field, c.found, c.expected) for c in d.config_drifts] == [("per_user_limit", "3", "2")]


def test_closing_ends_the_sale_at_the_close_time() -> None:
    closed = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    later = datetime(2026, 12, 1, tzinfo=UTC)
    assert product(ends_at=later, closed_at=closed).sale_config().ends_at_ms == int(closed.timestamp() * 1000)


def test_oversold_expectation_is_reported_negative() -> None:
    d = diff(inputs(units=2, stock=0, recorded=Recorded({"a": 3}, 3)))
    assert (d.expected_stock, d.cap) == (-1, 0)


def test_microseconds_round_trip_exactly() -> None:
    assert to_us(from_us(T + 123_457)) == T + 123_457


def facts(units: int, *, rows: int | None = None, refused: int = 0, counter: int | None = None) -> RecordFacts:
    ids = frozenset(str(uuid.uuid4()) for _ in range(rows if rows is not None else units))
    return RecordFacts(
        units_sold_counter=units if counter is None else counter,
        rows=len(ids),
        units=units,
        distinct_ids=len(ids),
        distinct_identities=len(ids),
        refused_ids=frozenset(str(uuid.uuid4()) for _ in range(refused)),
        row_ids=ids,
    )


def test_judge_passes_a_drained_consistent_sale() -> None:
    f = facts(4)
    v = judge(diff(inputs(units=10, stock=6, recorded=Recorded({"a": 4}, 4), bought={"a": 4})), f, f.row_ids)
    assert v.ok
    assert (v.lost, v.duplicated, v.oversold) == (0, 0, 0)
    assert v.line().startswith("s ok units_on_sale=10 units_sold=4 redis_stock=6 rows=4")


def test_judge_names_each_violated_invariant() -> None:
    f = facts(11, counter=12, refused=1)
    missing = str(uuid.uuid4())
    d = diff(inputs(units=10, stock=-1, backlog=[ref()], recorded=Recorded({"a": 11}, 11), bought={"a": 11}))
    v = judge(d, f, f.row_ids | {missing})
    assert not v.ok
    assert (v.lost, v.oversold, v.refused) == (2, 2, 1)
    text = " | ".join(v.violations)
    for fragment in ("I1 11 units recorded of 10", "I1 Redis stock is -1", "units_sold 12", "I2 2 admitted", "I4 not"):
        assert fragment in text


def test_judge_checks_conservation_once_drained() -> None:
    f = facts(3)
    v = judge(diff(inputs(units=10, stock=6, recorded=Recorded({"a": 3}, 3), bought={"a": 3})), f, frozenset())
    assert v.violations == ["I4 Redis stock 6 + 3 sold != 10 on sale"]


def test_accepted_ids_are_validated() -> None:
    good = str(uuid.uuid4())
    assert parse_order_ids([good + "\n", "\n"]) == [good]
    with pytest.raises(ReconcileError, match="line 2: not an order id"):
        parse_order_ids([good, "nope"])


def test_table_and_json_show_the_findings() -> None:
    d = diff(inputs(units=10, stock=9, bought={"ghost": 1}))
    text = table([d], [])
    assert "SKU" in text
    assert "-1" in text
    assert "buyer 'ghost' has 1 unit(s) in Redis, 0" in text
    assert "1 of 1 SKU(s) drift; run with --apply" in text
    doc = as_json([d], [], drifted=True)
    assert doc["drifted"]
    assert doc["skus"][0]["drift"] == -1
    assert doc["skus"][0]["buyers"] == {"ghost": {"redis": 1, "expected": 0}}


@pytest.mark.parametrize(("ttl", "match"), [("0", "='0': expected `int` >= 1"), ("day", "='day': expected `int`")])
def test_reconcile_settings_refuse_an_idempotency_ttl_that_cannot_work(ttl: str, match: str) -> None:
    env = {"REDIS_URL": "redis://x", "DATABASE_URL": "postgresql://x", "KAFKA_BOOTSTRAP": "x:1"}
    with pytest.raises(ConfigError, match=f"FLASHGATE_IDEM_TTL_S{match}"):
        ReconcileSettings.from_env({**env, "FLASHGATE_IDEM_TTL_S": ttl})
    gate = GateSettings.from_env({**env, "FLASHGATE_GATE_AUTH": "off"})
    assert ReconcileSettings.from_env(env).idem_ttl_s == gate.idem_ttl_s == DEFAULT_IDEM_TTL_S
