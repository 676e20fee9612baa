"""A sale's configuration as the gate reads it from Redis (`sale:{sku}`), shared by every writer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class SaleConfig:
    """Times are Unix ms (0 = open-ended); rate 0 = no rate limit; per_user_limit 0 = no cap."""

    units: int
    starts_at_ms: int = 0
    ends_at_ms: int = 0
    per_user_limit: int = 0
    rate_per_s: float = 0.0
    burst: int = 1

    def to_redis(self) -> dict[str, str]:
        """The `sale:{sku}` hash fields, as admit.lua parses them."""
        return {f.name: repr(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_redis(cls, raw: Mapping[str, str]) -> SaleConfig:
        """Parse a `sale:{sku}` hash; raises ValueError on a missing or malformed field."""
        try:
            return cls(
                units=int(raw["units"]),
                starts_at_ms=int(raw["starts_at_ms"]),
                ends_at_ms=int(raw["ends_at_ms"]),
                per_user_limit=int(raw["per_user_limit"]),
                rate_per_s=float(raw["rate_per_s"]),
                burst=int(raw["burst"]),
            )
        except (KeyError, ValueError) as e:
            raise ValueError(f"bad sale config in Redis: {dict(raw)}") from e
