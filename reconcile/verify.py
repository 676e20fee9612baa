"""`verify`: check invariants I1–I4 (docs/architecture.md) per SKU on a drained pipeline (the shared checker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from reconcile.diff import diff
from reconcile.errors import ReconcileError
from reconcile.model import SkuDiff
from reconcile.redis_state import SaleRedis
from reconcile.run import connections, gather
from reconcile.settings import ReconcileSettings


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What PostgreSQL holds for one SKU, every row counted."""

    units_sold_counter: int  # products.units_sold
    rows: int
    units: int  # sum of orders.qty
    distinct_ids: int
    distinct_identities: int
    refused_ids: frozenset[str]
    row_ids: frozenset[str]


@dataclass(slots=True)
class SkuVerdict:
    sku: str
    units_on_sale: int
    units_sold: int
    redis_stock: int | None
    rows: int
    in_flight: int
    outbox: int
    refused: int
    lost: int
    duplicated: int
    oversold: int
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "ok": self.ok, **{k: v for k, v in asdict(self).items() if k != "sku"}}

    def line(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.as_dict().items() if k not in ("sku", "ok", "violations"))
        tail = f" violations: {'; '.join(self.violations)}" if self.violations else ""
        return f"{self.sku} {'ok' if self.ok else 'FAIL'} {counts}{tail}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    skus: list[SkuVerdict]
    unattributed: int = 0  # --accepted ids found nowhere, with several SKUs checked

    @property
    def ok(self) -> bool:
        return self.unattributed == 0 and all(v.ok for v in self.skus)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "unattributed": self.unattributed, "skus": [v.as_dict() for v in self.skus]}


def judge(d: SkuDiff, facts: RecordFacts, accepted: frozenset[str]) -> SkuVerdict:
    """Pure: the invariants for one SKU. `accepted`: order ids admitted for this SKU (202s)."""
    lost_ids = (accepted - facts.row_ids) | facts.refused_ids
    stock = d.found_stock
    v = SkuVerdict(
        sku=d.sku,
        units_on_sale=d.units_on_sale,
        units_sold=facts.units,
        redis_stock=stock,
        rows=facts.rows,
        in_flight=d.in_flight,
        outbox=d.outbox,
        refused=len(facts.refused_ids),
        lost=len(lost_ids),
        duplicated=(facts.rows - facts.distinct_identities) + (facts.rows - facts.distinct_ids),
        oversold=max(0, facts.units - d.units_on_sale) + max(0, -(stock or 0)),
    )
    if facts.units > d.units_on_sale:
        v.violations.append(f"I1 {facts.units} units recorded of {d.units_on_sale} on sale")
    if stock is not None and stock < 0:
        v.violations.append(f"I1 Redis stock is {stock}")
    if facts.units_sold_counter != facts.units:
        v.violations.append(f"I1 products.units_sold {facts.units_sold_counter} != {facts.units} units in rows")
    if v.lost:
        v.violations.append(f"I2 {v.lost} admitted order(s) not recorded ({len(facts.refused_ids)} refused)")
    if v.duplicated:
        v.violations.append(f"I3 {v.duplicated} duplicate row(s)")
    if d.in_flight or d.outbox:
        v.violations.append(f"I4 not drained: {d.in_flight} unit(s) in Kafka, {d.outbox} in the outbox")
    elif not d.redis_has_sale or stock is None:
        v.violations.append("I4 Redis has no stock for this sale")
    elif stock + facts.units != d.units_on_sale:
        v.violations.append(f"I4 Redis stock {stock} + {facts.units} sold != {d.units_on_sale} on sale")
    if d.user_drifts:
        v.violations.append(f"I4 per-user counts differ for {len(d.user_drifts)} buyer(s)")
    return v


async def record_facts(conn: asyncpg.Connection, sku: str) -> RecordFacts:
    row = await conn.fetchrow(
        "SELECT count(*) AS rows, coalesce(sum(qty), 0)::bigint AS units, count(DISTINCT order_id) AS ids, "
        "count(DISTINCT (user_id, idempotency_key)) AS identities, "
        "(SELECT units_sold FROM products WHERE sku = $1) AS counter FROM orders WHERE sku = $1",
        sku,
    )
    assert row is not None
    refused = await conn.fetch("SELECT order_id::text FROM refused_orders WHERE sku = $1", sku)
    ids = await conn.fetch("SELECT order_id::text FROM orders WHERE sku = $1", sku)
    return RecordFacts(
        units_sold_counter=row["counter"] or 0,
        rows=row["rows"],
        units=int(row["units"]),
        distinct_ids=row["ids"],
        distinct_identities=row["identities"],
        refused_ids=frozenset(r["order_id"] for r in refused),
        row_ids=frozenset(r["order_id"] for r in ids),
    )


def parse_order_ids(lines: Iterable[str]) -> list[str]:
    """Order ids, one per line (blank lines skipped); raises ReconcileError naming a bad line."""
    ids = []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            ids.append(str(uuid.UUID(text)))
        except ValueError as e:
            raise ReconcileError(f"--accepted line {n}: not an order id: {text[:60]!r}") from e
    return ids


async def attribute(conn: asyncpg.Connection, redis: SaleRedis, ids: Sequence[str]) -> dict[str, str]:
    """Order id → SKU, from the rows, the refused rows, then the gate's order index in Redis."""
    rows = await conn.fetch(
        "SELECT order_id::text, sku FROM orders WHERE order_id = ANY($1::uuid[]) "
        "UNION ALL SELECT order_id::text, sku FROM refused_orders WHERE order_id = ANY($1::uuid[])",
        list(ids),
    )
    found = {r["order_id"]: r["sku"] for r in rows}
    for order_id in ids:
        if order_id not in found and (sku := await redis.order_sku(order_id)) is not None:
            found[order_id] = sku
    return found


async def verify(
    settings: ReconcileSettings, skus: Sequence[str] | None = None, accepted: Iterable[str] | None = None
) -> VerifyReport:
    """Check every SKU (or `skus`). `accepted`: the 202s a client saw; without it, the accepted
    answers Redis still remembers stand in for them. Raises ReconcileError on unknown SKUs
    or services that cannot be read.
    """
    async with connections(settings) as (conn, client):
        redis = SaleRedis(client)
        inputs = await gather(conn, redis, settings, skus)
        by_sku: dict[str, set[str]] = {i.product.sku: set() for i in inputs}
        unattributed = 0
        if accepted is not None:
            ids = list(accepted)
            owners = await attribute(conn, redis, ids)
            for order_id in ids:
                sku = owners.get(order_id) or (next(iter(by_sku)) if len(by_sku) == 1 else None)
                if sku is None:
                    unattributed += 1
                elif sku in by_sku:
                    by_sku[sku].add(order_id)
        else:
            for sku in by_sku:
                by_sku[sku] = set(await redis.accepted_answers(sku, ttl_s=settings.idem_ttl_s))
        verdicts = [
            judge(diff(i), await record_facts(conn, i.product.sku), frozenset(by_sku[i.product.sku])) for i in inputs
        ]
    return VerifyReport(verdicts, unattributed)
