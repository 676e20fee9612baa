"""The admission client: admit.lua and the outbox scripts, parsed into typed results."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from flashgate import names, orderindex
from flashgate.fingerprint import request_fingerprint
from flashgate.outbox import OutboxEntry
from gate.errors import RedisUnavailable
from gate.redis_batch import RoundTrips
from gate.scripts import Scripts

log = logging.getLogger(__name__)


class Code(IntEnum):
    """admit.lua return codes (see the header of lua/admit.lua)."""

    ACCEPTED = 0
    REPLAY = 1
    MISMATCH = 2
    UNKNOWN_SKU = 3
    NOT_STARTED = 4
    ENDED = 5
    RATE_LIMITED = 6
    USER_LIMIT = 7
    SOLD_OUT = 8


@dataclass(frozen=True, slots=True)
class AdmitRequest:
    sku: str
    user: str
    key: str
    qty: int
    trace: str = ""  # the client's traceparent, if valid (flashgate/tracecontext.py), else ""

    @property
    def fingerprint(self) -> str:
        return request_fingerprint(self.sku, self.qty)


@dataclass(frozen=True, slots=True)
class Admission:
    """One admission outcome. For a replay, `code` is the stored outcome and `replayed` is true."""

    code: Code
    order_id: str = ""
    accepted_at_us: int = 0
    stream_id: str = ""
    stock_left: int | None = None
    wait_ms: int = 0
    replayed: bool = False
    pending: bool = False  # replay of an accepted order still waiting in the outbox
    buyers: int = 0  # SOLD_OUT: how many buyers the SKU has (tells the sold-out cache its buyer set changed)
    allowance: str = ""  # ACCEPTED on a rate-limited sale: "remaining,reset_s,rate,burst" (gate/ratelimit.py)


@dataclass(frozen=True, slots=True)
class IndexedOrder:
    """What Redis remembers of an admitted order for the status endpoint."""

    sku: str
    user: str
    qty: int
    pending: bool  # still in the outbox (not yet known to be in Kafka)


SLOTS_PER_ORDER = 5  # width of one order's reply in admit.lua's flat array


def parse_admit(raw: Sequence[Any], order_ids: Sequence[str]) -> list[Admission]:
    """admit.lua's flat reply → one Admission per order; ValueError on a reply the header does not list."""
    if len(raw) != SLOTS_PER_ORDER * len(order_ids):
        raise ValueError(f"admit.lua answered {len(raw)} slots for {len(order_ids)} orders")
    out: list[Admission] = []
    for i, order_id in enumerate(order_ids):
        code, a, b, c, d = raw[SLOTS_PER_ORDER * i : SLOTS_PER_ORDER * (i + 1)]
        out.append(_admission(Code(int(code)), order_id, a, b, c, d))
    return out


def _admission(code: Code, order_id: str, a: Any, b: Any, c: Any, d: Any) -> Admission:
    if code is Code.ACCEPTED:
        allowance = "" if not d else d.decode() if isinstance(d, bytes) else str(d)
        return Admission(code, order_id, int(a), str(b), stock_left=int(c), allowance=allowance)
    if code is Code.REPLAY:
        return Admission(Code(int(a)), str(b), int(c), replayed=True, pending=bool(int(d)))
    if code in (Code.NOT_STARTED, Code.RATE_LIMITED):
        return Admission(code, wait_ms=int(a))
    if code is Code.SOLD_OUT:
        return Admission(code, stock_left=int(a), buyers=int(b))
    return Admission(code)


class AdmissionClient:
    """All Redis traffic of the gate; every call shares the current tick's pipeline."""

    def __init__(self, batcher: RoundTrips, scripts: Scripts, *, idem_ttl_s: int) -> None:
        self._batcher = batcher
        self._scripts = scripts
        self._idem_ttl_s = idem_ttl_s

    async def admit(self, req: AdmitRequest, order_id: str | None = None) -> Admission:
        """Admit one order (a batch of one); a given `order_id` must carry the SKU's slot (`new_order_id`)."""
        order_id = order_id or str(orderindex.new_order_id(orderindex.sku_slot(req.sku)))
        return (await self.admit_batch(req.sku, [req], [order_id]))[0]

    async def admit_batch(self, sku: str, reqs: Sequence[AdmitRequest], order_ids: Sequence[str]) -> list[Admission]:
        """Run admit.lua once for orders of one SKU; each order id is used only if that order is admitted now.

        Every order id must carry the SKU's slot and the same day (`flashgate.orderindex`): the
        index entry of the whole batch goes to the hash of the first one.
        """
        slot = orderindex.sku_slot(sku)
        first = uuid.UUID(order_ids[0])
        if any(orderindex.text_slot(o) != slot for o in order_ids):
            raise ValueError(f"order ids must carry the slot of SKU {sku!r} ({slot})")
        keys = [
            names.sale_key(sku),
            names.stock_key(sku),
            names.bought_key(sku),
            names.outbox_key(sku),
            orderindex.index_key(first),
            names.idem_prefix(sku),
            names.rate_prefix(sku),
        ]
        args: list[Any] = [
            self._idem_ttl_s,
            orderindex.index_ttl_s(self._idem_ttl_s),
            sku,
        ]
        for req, order_id in zip(reqs, order_ids, strict=True):
            field = names.idem_field(req.user, req.key)
            args += (req.fingerprint, req.qty, order_id, req.user, req.key, field, req.trace)
        raw = await self._scripts.call(self._batcher, names.ADMIT_SCRIPT, keys, args)
        return parse_admit(raw, order_ids)

    async def buyers(self, sku: str) -> set[str]:
        """Every user with units admitted on this SKU (bounded by its stock)."""
        return set(await self._batcher.call("HKEYS", names.bought_key(sku)))

    async def order(self, order_id: uuid.UUID) -> IndexedOrder | None:
        """An indexed order (sku, user, qty, still in the outbox), or None."""
        value = await self._batcher.call("HGET", orderindex.index_key(order_id), str(order_id))
        if value is None:
            return None
        entry = orderindex.IndexEntry.decode(value)
        sid = entry.stream_id
        pending = bool(await self._batcher.call("XRANGE", names.outbox_key(entry.sku), sid, sid))
        return IndexedOrder(entry.sku, entry.user, entry.qty, pending)

    async def ack(self, sku: str, stream_ids: Sequence[str]) -> int:
        """outbox_ack.lua: forget delivered entries; returns how many this call deleted."""
        return int(
            await self._scripts.call(self._batcher, names.OUTBOX_ACK_SCRIPT, (names.outbox_key(sku),), stream_ids)
        )

    async def outbox_lengths(self, skus: Sequence[str]) -> list[int | RedisUnavailable]:
        """XLEN of each SKU's outbox, all in this tick's round trip(s); a SKU whose Redis (its shard, on
        a cluster) did not answer has its RedisUnavailable in its place. Any other error is raised."""
        calls: list[asyncio.Future[Any]] = []
        for sku in skus:
            try:
                calls.append(self._batcher.call("XLEN", names.outbox_key(sku)))
            except RedisUnavailable as e:  # that node's breaker is open: failed without a round trip
                failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed.set_exception(e)
                calls.append(failed)
        lengths: list[int | RedisUnavailable] = []
        for reply in await asyncio.gather(*calls, return_exceptions=True):  # every failure retrieved
            if isinstance(reply, RedisUnavailable):
                lengths.append(reply)
            elif isinstance(reply, BaseException):
                raise reply
            else:
                lengths.append(int(reply))
        return lengths

    async def claim(
        self, sku: str, *, relay: str, min_age_ms: int, lease_ms: int, cursor: str, count: int
    ) -> tuple[str, list[OutboxEntry]]:
        """outbox_claim.lua: entries admitted more than `min_age_ms` ago → (next cursor, entries).

        Nothing unless this relay holds (or now takes) the SKU's relay lease for `lease_ms`.
        """
        keys = (names.outbox_key(sku), names.relay_lease_key(sku))
        raw = await self._scripts.call(
            self._batcher, names.OUTBOX_CLAIM_SCRIPT, keys, (relay, min_age_ms, cursor, count, lease_ms)
        )
        entries = []
        for sid, fields in raw[1]:
            try:
                entries.append(OutboxEntry.decode(sid, fields))
            except (KeyError, ValueError):
                log.error("outbox:{%s} entry %s is malformed, left in place: %r", sku, sid, fields)
        return str(raw[0]), entries

    async def sale_skus(self) -> set[str]:
        """Every SKU of the sale registry (`names.SALE_REGISTRY`): where outboxes can be; never a SCAN."""
        return set(await self._batcher.call("SMEMBERS", names.SALE_REGISTRY))
