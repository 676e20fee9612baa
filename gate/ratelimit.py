"""IETF RateLimit fields for 429s and for 202s of rate-limited sales (draft-ietf-httpapi-ratelimit-headers-11).

    RateLimit-Policy: "buyer";q=<quota>;w=<window s>     the SKU's per-buyer GCRA, as a quota
    RateLimit: "buyer";r=0;t=<s until the next order is let through>          (429)
    RateLimit: "buyer";r=<orders the buyer may still send now>;t=<s until the whole burst is back>  (202)

A 202 costs nothing more for them: admit.lua returns the accepted order's allowance and the
sale's rate and burst in a reply slot it had free (`allowance_fields`); a sale without a rate
limit returns nothing there, and its 202s carry no RateLimit fields.

admit.lua says how long a limited buyer must wait; the policy (`rate_per_s`, `burst` of the
sale) it does not return, so it is read from `sale:{sku}` on a 429 and kept POLICY_TTL_S per SKU
(one HMGET per SKU and process every few seconds, however many buyers are limited). A GCRA of
rate R/s and burst B lets B orders through at once, then one every 1/R s: the policy is
`q=max(B, ⌊R·w⌋)` orders per `w=max(1, ⌈B/R⌉)` seconds (the draft's windows are whole seconds).
Redis failing here only leaves RateLimit-Policy out; the 429 is answered all the same.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable

from flashgate import names
from gate.redis_batch import RoundTrips

log = logging.getLogger(__name__)

POLICY = "buyer"
POLICY_TTL_S = 5.0


def policy_field(rate_per_s: float, burst: int) -> bytes | None:
    """The RateLimit-Policy value for a GCRA; None when the sale has no rate limit."""
    if rate_per_s <= 0:
        return None
    burst = max(1, burst)
    window_s = max(1, math.ceil(burst / rate_per_s))
    quota = max(burst, math.floor(rate_per_s * window_s))
    return b'"%s";q=%d;w=%d' % (POLICY.encode(), quota, window_s)


def limit_field(wait_ms: int) -> bytes:
    """The RateLimit value of a limited buyer: nothing left for the next ⌈wait⌉ seconds."""
    return b'"%s";r=0;t=%d' % (POLICY.encode(), max(1, -(-wait_ms // 1000)))


@functools.lru_cache(maxsize=1024)
def _policy(rate: str, burst: str) -> bytes | None:
    return policy_field(float(rate), int(burst))


def allowance_fields(allowance: str) -> tuple[tuple[bytes, bytes], ...]:
    """The RateLimit fields of a 202 from admit.lua's allowance, "remaining,reset_s,rate,burst"."""
    remaining, reset_s, rate, burst = allowance.split(",")
    limit = (b"ratelimit", b'"%s";r=%s;t=%s' % (POLICY.encode(), remaining.encode(), reset_s.encode()))
    policy = _policy(rate, burst)
    return (limit,) if policy is None else ((b"ratelimit-policy", policy), limit)


class RatePolicies:
    """`await headers(sku, wait_ms)` → the RateLimit fields of a 429 for that SKU."""

    def __init__(self, batcher: RoundTrips, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._batcher = batcher
        self._clock = clock
        self._known: dict[str, tuple[float, bytes | None]] = {}
        self._asking: dict[str, asyncio.Future[bytes | None]] = {}

    async def headers(self, sku: str, wait_ms: int) -> tuple[tuple[bytes, bytes], ...]:
        limit = (b"ratelimit", limit_field(wait_ms))
        policy = await self._policy(sku)
        return (limit,) if policy is None else ((b"ratelimit-policy", policy), limit)

    async def _policy(self, sku: str) -> bytes | None:
        known = self._known.get(sku)
        if known is not None and self._clock() < known[0]:
            return known[1]
        asking = self._asking.get(sku)
        if asking is not None:  # one read per SKU, however many 429s wait for it
            return await asyncio.shield(asking)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._asking[sku] = future
        policy = None
        try:
            policy = await self._read(sku)
        finally:  # cancelled (shutdown): the waiters go on without the policy
            del self._asking[sku]
            future.set_result(policy)
        return policy

    async def _read(self, sku: str) -> bytes | None:
        try:
            rate, burst = await self._batcher.call("HMGET", names.sale_key(sku), "rate_per_s", "burst")
            policy = policy_field(float(rate or 0), int(burst or 1))
        except Exception as e:  # Redis down or a malformed sale: the 429 goes out without the policy
            log.debug("rate policy of %s not read: %s", sku, e)
            return None
        self._known[sku] = (self._clock() + POLICY_TTL_S, policy)
        return policy
