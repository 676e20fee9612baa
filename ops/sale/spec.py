"""What a new sale must be: parsed and validated before anything is written (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flashgate.events import is_sku


class SaleError(Exception):
    """A sale command that cannot be carried out; the message is the one line the CLI prints."""


def parse_time(text: str, option: str) -> datetime:
    """ISO 8601 (`2026-11-27T09:00:00+01:00`); a time without a zone is taken as UTC."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError as e:
        raise SaleError(f"{option}: not an ISO 8601 time: {text!r}") from e
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def check_sku(sku: str) -> str:
    """The SKU rule of the order body and the event (`flashgate.events.Sku`), or SaleError."""
    if not is_sku(sku):
        raise SaleError(f"bad SKU {sku!r}: 1–64 characters of A–Z, a–z, 0–9, '.', '_' and '-'")
    return sku


@dataclass(frozen=True, slots=True)
class SaleSpec:
    sku: str
    name: str
    stock: int
    per_user_limit: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    rate_per_s: float | None = None
    burst: int | None = None

    def __post_init__(self) -> None:
        check_sku(self.sku)
        if not self.name.strip():
            raise SaleError("--name must not be empty")
        if self.stock < 0:
            raise SaleError(f"--stock must be >= 0, not {self.stock}")
        if self.per_user_limit is not None and self.per_user_limit < 1:
            raise SaleError(f"--per-user-limit must be >= 1, not {self.per_user_limit}")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise SaleError("--ends-at must be after --starts-at")
        if (self.rate_per_s is None) != (self.burst is None):
            raise SaleError("--rate and --burst go together")
        if self.rate_per_s is not None and not self.rate_per_s > 0:
            raise SaleError(f"--rate must be > 0 requests/s, not {self.rate_per_s}")
        if self.burst is not None and self.burst < 1:
            raise SaleError(f"--burst must be >= 1, not {self.burst}")
