"""A per-process memory of sold-out SKUs and their buyers, so a sold-out storm is answered without Redis.

Once a SKU is sold out, the set of keys that were *admitted* for it is final (bounded by its
stock), and every admitted key belongs to a buyer in `bought:{sku}`. So a request from a user
who is not a buyer cannot be a retry of an admitted order: it is answered `sold_out` here.
Buyers still go to Redis, which replays their stored answers (202 for an admitted key).

Two answers differ from asking Redis, both for users who never bought (decided in issue 12):
- a repeated key whose first answer was a refusal (`sold_out`, `user_limit`, `sale_ended`) is
  answered `sold_out` afresh, without `Idempotent-Replayed`;
- a key reused with another body gets `sold_out` rather than 422.
Neither can hide an order: the key was never admitted, so there is nothing to replay.

`ttl_s` bounds how long a restock (`flashgate sale add-stock`, the reconciler) goes unseen. The
buyer set is dropped when this process admits an order or Redis reports another buyer count,
and refetched then and at least every `buyers_max_age_s`. One window remains, bounded by
`ttl_s`: right after a restock, an order admitted by *another* gate process is not in this
process's set until its sold-out memory expires, so a retry of that order landing here within
`ttl_s` of the restock is answered `sold_out` (the order itself stands: nothing is lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _SoldOut:
    until: float
    buyers: frozenset[str] | None = None  # None: not fetched yet (every request goes to Redis)
    fetched_at: float = 0.0
    wanted: bool = True  # the buyer set must be (re)fetched


@dataclass
class SoldOutCache:
    """SKU → sold-out state. Pure: time is passed in; the caller fetches buyer sets when `wants_buyers`."""

    ttl_s: float
    buyers_max_age_s: float = 5.0
    _skus: dict[str, _SoldOut] = field(default_factory=dict)

    def mark(self, sku: str, now: float, buyer_count: int | None = None) -> None:
        """Redis said the SKU has no units left.

        `buyer_count` is HLEN bought:{sku} from a SOLD_OUT answer; None when the mark comes from an
        order admitted just now (taking the last units), which means the buyer set changed.
        """
        state = self._skus.get(sku)
        if state is None:
            self._skus[sku] = _SoldOut(until=now + self.ttl_s)
            return
        state.until = now + self.ttl_s
        changed = buyer_count is None or (state.buyers is not None and buyer_count != len(state.buyers))
        if changed:
            state.buyers = None  # never answer from a set that misses a buyer
        if state.buyers is None or changed or now - state.fetched_at > self.buyers_max_age_s:
            state.wanted = True

    def answers_sold_out(self, sku: str, user: str, now: float) -> bool:
        """True: answer `sold_out` without Redis. False: ask Redis (not sold out, a buyer, or no buyer set yet)."""
        state = self._skus.get(sku)
        if state is None:
            return False
        if now >= state.until:
            return False
        return state.buyers is not None and user not in state.buyers

    def wants_buyers(self, sku: str) -> bool:
        """Should the caller fetch the buyer set now? (At most one fetch at a time per SKU.)"""
        state = self._skus.get(sku)
        if state is None or not state.wanted:
            return False
        state.wanted = False
        return True

    def set_buyers(self, sku: str, buyers: frozenset[str], now: float) -> None:
        state = self._skus.get(sku)
        if state is not None:
            state.buyers = buyers
            state.fetched_at = now

    def fetch_failed(self, sku: str) -> None:
        """The fetch failed: ask again at the next sold-out answer."""
        state = self._skus.get(sku)
        if state is not None:
            state.wanted = True
