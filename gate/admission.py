"""The admission client: admit.lua and the outbox scripts, parsed into typed results."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgspec

from flashgate import names, orderindex
from flashgate.fingerprint import request_fingerprint
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


class AdmitRequest(msgspec.Struct, frozen=True):
    sku: str
    user: str
    key: str
    qty: int
    trace: str = ""  # the client's traceparent, if valid (flashgate/tracecontext.py), else ""

    @property
    def fingerprint(self) -> str:
        return request_fingerprint(self.sku, self.qty)


class Admission(msgspec.Struct, frozen=True):
    """One admission outcome. For a replay, `code` is the stored outcome and `replayed` is true.

    This, AdmitRequest and the Answer are made per order: msgspec Structs (0.4 µs to make here,
    a frozen slots dataclass of these fields 3.2 µs).
    """

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
_CODES = {code.value: code for code in Code}  # a dict lookup, not Code(x): 0.1 µs instead of 1.1


def _code(value: Any) -> Code:
    code = _CODES.get(int(value))
    if code is None:
        raise ValueError(f"{value!r} is not an admit.lua code")
    return code


def parse_admit(raw: Sequence[Any], order_ids: Sequence[str]) -> list[Admission]:
    """admit.lua's flat reply → one Admission per order; ValueError on a reply the header does not list."""
    if len(raw) != SLOTS_PER_ORDER * len(order_ids):
        raise ValueError(f"admit.lua answered {len(raw)} slots for {len(order_ids)} orders")
    out: list[Admission] = []
    for i, order_id in enumerate(order_ids):
        code, a, b, c, d = raw[SLOTS_PER_ORDER * i : SLOTS_PER_ORDER * (i + 1)]
        out.append(_admission(_code(code), order_id, a, b, c, d))
    return out


def _admission(code: Code, order_id: str, a: Any, b: Any, c: Any, d: Any) -> Admission:
    if code is Code.ACCEPTED:
        allowance = "" if not d else d.decode() if isinstance(d, bytes) else str(d)
        return Admission(code, order_id, int(a), str(b), stock_left=int(c), allowance=allowance)
    if code is Code.REPLAY:
        return Admission(_code(a), str(b), int(c), replayed=True, pending=bool(int(d)))
    if code in (Code.NOT_STARTED, Code.RATE_LIMITED):
        return Admission(code, wait_ms=int(a))
    if code is Code.SOLD_OUT:
        return Admission(code, stock_left=int(a), buyers=int(b))
    return Admission(code)


class AdmissionClient:
    """The admission's Redis calls (admit.lua, the buyer set, the order index), in the current tick's pipeline.

    The outbox's own calls (ack, claim, lengths) are gate/outbox.py's OutboxClient.
    """

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

        The order ids must be one call's (`flashgate.orderindex.new_order_ids` for the SKU's slot):
        the call's one index entry is named by their shared call field.
        """
        slot = orderindex.sku_slot(sku)
        first = uuid.UUID(order_ids[0])
        call = orderindex.call_field(order_ids[0])
        if orderindex.text_slot(call) != slot:  # the slot is in the call field: one check for the call
            raise ValueError(f"order ids must carry the slot of SKU {sku!r} ({slot})")
        if any(not o.startswith(call) for o in order_ids):
            raise ValueError("order ids must be one call's (flashgate.orderindex.new_order_ids)")
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
        values = await self._batcher.call("HMGET", orderindex.index_key(order_id), *orderindex.index_fields(order_id))
        entry = orderindex.lookup(order_id, values)
        if entry is None:
            return None
        sid = entry.stream_id
        pending = bool(await self._batcher.call("XRANGE", names.outbox_key(entry.sku), sid, sid))
        return IndexedOrder(entry.sku, entry.user, entry.qty, pending)
