"""The admission client: admit.lua and the outbox scripts, parsed into typed results."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from redis.exceptions import RedisError

from flashgate import names
from flashgate.fingerprint import request_fingerprint
from gate.errors import RedisUnavailable
from gate.redis_batch import RedisBatcher
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


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox stream entry: an admitted order not yet known to be in Kafka."""

    stream_id: str
    order_id: str
    user: str
    qty: int
    key: str
    accepted_at_us: int


def parse_admit(raw: Sequence[Any]) -> Admission:
    """admit.lua's reply → Admission; raises ValueError on a reply the header does not list."""
    code = Code(int(raw[0]))
    if code is Code.ACCEPTED:
        return Admission(code, str(raw[1]), int(raw[2]), str(raw[3]), stock_left=int(raw[4]))
    if code is Code.REPLAY:
        return Admission(Code(int(raw[1])), str(raw[2]), int(raw[3]), replayed=True, pending=bool(int(raw[4])))
    if code in (Code.NOT_STARTED, Code.RATE_LIMITED):
        return Admission(code, wait_ms=int(raw[1]))
    if code is Code.SOLD_OUT:
        return Admission(code, stock_left=int(raw[1]))
    return Admission(code)


def parse_entry(stream_id: str, fields: Sequence[str]) -> OutboxEntry:
    f = dict(zip(fields[::2], fields[1::2], strict=True))
    return OutboxEntry(stream_id, f["o"], f["u"], int(f["q"]), f["k"], int(f["t"]))


class AdmissionClient:
    """All Redis traffic of the gate; every call shares the current tick's pipeline."""

    def __init__(self, batcher: RedisBatcher, scripts: Scripts, *, idem_ttl_s: int) -> None:
        self._batcher = batcher
        self._scripts = scripts
        self._idem_ttl_s = idem_ttl_s

    async def admit(self, req: AdmitRequest, order_id: str) -> Admission:
        """Run admit.lua once; `order_id` is used only if the order is admitted now."""
        keys = (
            names.sale_key(req.sku),
            names.stock_key(req.sku),
            names.rate_key(req.sku, req.user),
            names.idem_key(req.sku, req.user, req.key),
            names.bought_key(req.sku),
            names.outbox_key(req.sku),
        )
        args = (
            req.fingerprint,
            req.qty,
            order_id,
            self._idem_ttl_s,
            req.user,
            req.key,
            names.OUTBOX_GROUP,
            names.OUTBOX_GATE_CONSUMER,
        )
        return parse_admit(await self._scripts.call(self._batcher, names.ADMIT_SCRIPT, keys, args))

    async def stored_answer(self, req: AdmitRequest) -> Admission | None:
        """The stored answer for this key, read without admit.lua (the sold-out cache path)."""
        key = names.idem_key(req.sku, req.user, req.key)
        f, c, o, t, x = await self._batcher.call("HMGET", key, "f", "c", "o", "t", "x")
        if f is None:
            return None
        if f != req.fingerprint:
            return Admission(Code.MISMATCH)
        pending = bool(x) and bool(await self._batcher.call("XRANGE", names.outbox_key(req.sku), x, x))
        return Admission(Code(int(c)), o or "", int(t or 0), replayed=True, pending=pending)

    def index_order(self, order_id: str, req: AdmitRequest, stream_id: str) -> None:
        """Best effort: remember order id → sku for `GET /v1/orders/{id}` (not part of any invariant)."""
        value = "\x1f".join((req.sku, req.user, str(req.qty), stream_id))
        self._batcher.fire("SET", names.order_key(order_id), value, "EX", self._idem_ttl_s)

    async def order(self, order_id: str) -> tuple[str, str, int, bool] | None:
        """(sku, user, qty, still in the outbox) of an indexed order, or None."""
        value = await self._batcher.call("GET", names.order_key(order_id))
        if value is None:
            return None
        sku, user, qty, x = value.split("\x1f")
        pending = bool(await self._batcher.call("XRANGE", names.outbox_key(sku), x, x))
        return sku, user, int(qty), pending

    async def ack(self, sku: str, stream_ids: Sequence[str]) -> int:
        """outbox_ack.lua: forget delivered entries; returns how many this call deleted."""
        args = (names.OUTBOX_GROUP, *stream_ids)
        return int(await self._scripts.call(self._batcher, names.OUTBOX_ACK_SCRIPT, (names.outbox_key(sku),), args))

    async def claim(self, sku: str, *, min_idle_ms: int, cursor: str, count: int) -> tuple[str, list[OutboxEntry]]:
        """outbox_claim.lua: entries pending longer than `min_idle_ms` → (next cursor, entries)."""
        args = (names.OUTBOX_GROUP, names.OUTBOX_RELAY_CONSUMER, min_idle_ms, cursor, count)
        raw = await self._scripts.call(self._batcher, names.OUTBOX_CLAIM_SCRIPT, (names.outbox_key(sku),), args)
        entries = []
        for sid, fields in raw[1]:
            try:
                entries.append(parse_entry(sid, fields))
            except (KeyError, ValueError):
                log.error("outbox:{%s} entry %s is malformed, left in place: %r", sku, sid, fields)
        return str(raw[0]), entries

    async def outbox_skus(self) -> list[str]:
        """SKUs that have an outbox stream (SCAN, for the relay; bounded by the number of keys)."""
        client = self._batcher.client
        try:
            found = [k async for k in client.scan_iter(match=names.OUTBOX_SCAN_PATTERN, count=1000, _type="stream")]
        except (RedisError, OSError) as e:
            raise RedisUnavailable(f"Redis SCAN: {e}") from e
        return [names.sku_of_outbox(k) for k in found]
