"""A short per-process memory of sold-out SKUs, so a sold-out storm does not reach admit.lua."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SoldOutCache:
    """SKU → monotonic expiry; `ttl_s` bounds how long a restock (reconciler) can go unseen."""

    ttl_s: float
    _until: dict[str, float] = field(default_factory=dict)

    def mark(self, sku: str, now: float) -> None:
        self._until[sku] = now + self.ttl_s

    def is_sold_out(self, sku: str, now: float) -> bool:
        until = self._until.get(sku)
        if until is None:
            return False
        if now >= until:
            del self._until[sku]
            return False
        return True
