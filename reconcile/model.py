"""What the reconciler reads about one SKU: plain values, no clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flashgate.saleconfig import SaleConfig
from reconcile.products import Product

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(t: datetime) -> int:
    """A timestamp as Unix µs, exactly (Redis TIME and PostgreSQL both keep µs)."""
    return (t - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class OrderRef:
    """One admitted order, wherever it was seen (outbox entry, Kafka message, database row)."""

    order_id: str
    user_id: str
    idempotency_key: str
    qty: int
    accepted_at_us: int

    @property
    def identity(self) -> tuple[str, str]:
        """(user, idempotency key): the database records one order per identity per SKU."""
        return self.user_id, self.idempotency_key


@dataclass(frozen=True, slots=True)
class RedisSnapshot:
    """sale_snapshot.lua's reply for one SKU, taken atomically at `taken_at_us` (Redis time)."""

    taken_at_us: int
    sale: dict[str, str]  # empty: Redis has no sale config
    stock: int | None  # None: the key is missing
    bought: dict[str, int]
    outbox: list[OrderRef]

    @property
    def has_sale(self) -> bool:
        return bool(self.sale)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What PostgreSQL says about one SKU, read after the Redis snapshot.

    `units_by_user` counts rows admitted up to the snapshot; `units_total` counts every row
    (for the cap); `ids` and `identities` are the backlog and outbox orders that already
    have a row (matched by order id or by (user, key)).
    """

    units_by_user: dict[str, int]
    units_total: int
    ids: frozenset[str] = field(default_factory=frozenset)
    identities: frozenset[tuple[str, str]] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class SkuInputs:
    """Everything the pure `diff` needs for one SKU."""

    product: Product
    redis: RedisSnapshot
    backlog: list[OrderRef]  # Kafka messages past the writers' committed offsets
    recorded: Recorded


@dataclass(frozen=True, slots=True)
class ConfigDrift:
    field: str
    found: str | None
    expected: str


@dataclass(frozen=True, slots=True)
class SkuDiff:
    """The reconciler's verdict on one SKU. Drifts are found − expected."""

    sku: str
    units_on_sale: int
    units_sold: int
    in_flight: int
    outbox: int
    expected_stock: int
    found_stock: int | None
    cap: int
    redis_has_sale: bool
    user_drifts: dict[str, tuple[int, int]]  # user → (found, expected)
    config_drifts: list[ConfigDrift]
    expected_bought: dict[str, int]
    expected_config: SaleConfig
    unrecorded: list[OrderRef]  # in flight or in the outbox, admitted before the snapshot

    @property
    def stock_drift(self) -> int:
        return (self.found_stock if self.found_stock is not None else 0) - self.expected_stock

    @property
    def drifted(self) -> bool:
        return (
            not self.redis_has_sale
            or self.found_stock is None
            or self.stock_drift != 0
            or bool(self.user_drifts)
            or bool(self.config_drifts)
        )
