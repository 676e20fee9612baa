"""The order index: order id → (sku, user, qty, outbox entry), written by admit.lua in the SKU's slot.

`GET /v1/orders/{id}` and the reconciler know only the order id, yet admission must write the
index in the same Redis Cluster slot as every other key of its call. So the order id carries the
slot: a UUIDv7 (RFC 9562) whose first 14 bits of `rand_b` are the SKU's cluster slot, and the
index lives in a hash per (slot, day) named with a hash tag that maps to that slot. The day comes
from the UUIDv7 timestamp, so a whole day's index expires at once (TTL = idempotency TTL + 1 day).

One index entry per admit.lua call, not per order: the ids of one call share everything but their
last 12 bits, the order's position in the call. So the id's text up to its last 3 hex digits (the
*call field*) names the call's entry, and the entry lists the call's admitted orders by position:

    call field → sku␟stream id␞pos␟user␟qty␞pos␟user␟qty…     (pos: the id's last 3 hex digits)

A hash field costs Redis more than the bytes of a longer value: one field per call took admit.lua's
HSET time per order from 2.6–2.9 to 1.3–1.5 µs in the pipeline, and the index from ~140 to ~20
bytes per order (docs/benchmarks.md, "One order-index entry per call"). Gates
before 2026-12-02 wrote one field per order, keyed by the whole id, `sku␟user␟qty␟stream id`;
readers look up both fields in one HMGET (`index_fields`, `lookup`) while those entries live.

Layout of the 128 bits: 48 unix_ts_ms | 4 version (7) | 12 rand_a | 2 variant (0b10) |
14 slot | 36 rand | 12 position. 48 random bits per call and millisecond remain; the ids of one
call differ only in their position, which GET cannot exploit: another user's order is a 404.
"""

from __future__ import annotations

import binascii
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

SLOTS = 16384
DAY_MS = 86_400_000
SEPARATOR = "\x1f"
ORDER_SEPARATOR = "\x1e"
POSITION_BITS = 12
CALL_ORDERS_MAX = 1 << POSITION_BITS  # order ids one admit.lua call can hand out
CALL_CHARS = 33  # an id's text without its last 3 hex digits (its position): the call field


def key_slot(key: str) -> int:
    """Redis Cluster's slot of a key: CRC16 (XMODEM) of the hash tag, or of the whole key, mod 16384."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key.encode(), 0) % SLOTS


def sku_slot(sku: str) -> int:
    """The slot of every key of a SKU (they are all tagged `{sku}`)."""
    return key_slot(f"{{{sku}}}")


@cache
def slot_tag(slot: int) -> str:
    """A short hash tag whose keys land in `slot` (the first base-36 counter that does; deterministic)."""
    if not 0 <= slot < SLOTS:
        raise ValueError(f"slot {slot} is outside 0..{SLOTS - 1}")
    i = 0
    while True:
        tag = _base36(i)
        if binascii.crc_hqx(tag.encode(), 0) % SLOTS == slot:
            return tag
        i += 1


def _base36(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = digits[i % 36]
    while i >= 36:
        i //= 36
        out = digits[i % 36] + out
    return out


def new_order_id(slot: int, now_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7 for an order of a SKU in `slot` (see the module docstring for the layout)."""
    return new_order_ids(slot, 1, now_ms)[0]


def new_order_ids(slot: int, n: int, now_ms: int | None = None) -> list[uuid.UUID]:
    """The `n` order ids of one admit.lua call for `slot`: one call field, positions 0..n-1."""
    call = _call(slot, n, now_ms)
    return [uuid.UUID(int=call | i) for i in range(n)]


def new_order_id_texts(slot: int, n: int, now_ms: int | None = None) -> list[str]:
    """`new_order_ids` as text, as the gate sends them: the call's text once, then each position's 3 hex digits."""
    first = str(uuid.UUID(int=_call(slot, n, now_ms)))
    prefix = first[:-3]
    return [first, *(f"{prefix}{i:03x}" for i in range(1, n))]


def _call(slot: int, n: int, now_ms: int | None) -> int:
    """The id of position 0 of a new call for `slot` handing out `n` ids, as an int."""
    if n > CALL_ORDERS_MAX:
        raise ValueError(f"{n} order ids for one call; at most {CALL_ORDERS_MAX}")
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    r = int.from_bytes(os.urandom(6), "big")  # 12 bits of rand_a, 36 of the call's rand_b
    return (
        ((ms & ((1 << 48) - 1)) << 80)
        | (0x7 << 76)
        | ((r >> 36) << 64)
        | (0b10 << 62)
        | ((slot % SLOTS) << 48)
        | ((r & ((1 << 36) - 1)) << POSITION_BITS)
    )


def call_field(order_id: str) -> str:
    """The index field of the admit.lua call an order id (text) was handed out for."""
    return order_id[:CALL_CHARS]


def order_slot(order_id: uuid.UUID) -> int:
    """The slot an order id carries."""
    return (order_id.int >> 48) & (SLOTS - 1)


def text_slot(order_id: str) -> int:
    """`order_slot` of an id in its text form, without parsing it: bits 48..63 are its 4th group."""
    return int(order_id[19:23], 16) & (SLOTS - 1)


def order_day(order_id: uuid.UUID) -> int:
    """Days since the epoch of the UUIDv7 timestamp."""
    return (order_id.int >> 80) // DAY_MS


def index_key(order_id: uuid.UUID) -> str:
    """The hash that holds this order's index entry: `oidx:{<tag of its slot>}:<day>`."""
    return f"oidx:{{{slot_tag(order_slot(order_id))}}}:{order_day(order_id)}"


def index_fields(order_id: uuid.UUID) -> list[str]:
    """The fields of `index_key(order_id)` that can hold the order: its call's, and a per-order one of older gates."""
    text = str(order_id)
    return [text[:CALL_CHARS], text]


def lookup(order_id: uuid.UUID, values: Sequence[str | bytes | None]) -> IndexEntry | None:
    """The order's entry from the values of `index_fields(order_id)` (HMGET), None when it is not indexed.

    ValueError on a value that is neither form (only admit.lua writes these hashes).
    """
    call, single = (v.decode() if isinstance(v, bytes) else v for v in values)
    if single is not None:
        return IndexEntry.decode(single)
    if call is None:
        return None
    head, *orders = call.split(ORDER_SEPARATOR)
    sku, stream_id = head.split(SEPARATOR)
    mark = str(order_id)[CALL_CHARS:] + SEPARATOR
    for order in orders:
        if order.startswith(mark):
            _, user, qty = order.split(SEPARATOR)
            return IndexEntry(sku, user, int(qty), stream_id)
    return None  # an id of the call whose order was not admitted


def encode_call(sku: str, stream_id: str, orders: Iterable[tuple[str, str, int]]) -> str:
    """The call entry admit.lua writes for its admitted (order id, user, qty); for tests and tools."""
    parts = [f"{sku}{SEPARATOR}{stream_id}"]
    parts += (SEPARATOR.join((o[CALL_CHARS:], user, str(qty))) for o, user, qty in orders)
    return ORDER_SEPARATOR.join(parts)


def index_ttl_s(idem_ttl_s: int) -> int:
    """How long a day's index hash lives: past the last order of the day by the idempotency TTL."""
    return idem_ttl_s + DAY_MS // 1000


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What Redis remembers of an admitted order: its SKU, buyer, units and outbox entry id.

    `encode`/`decode` are the per-order form gates wrote before 2026-12-02 (module docstring).
    """

    sku: str
    user: str
    qty: int
    stream_id: str

    def encode(self) -> str:
        """The per-order hash value of older gates: sku␟user␟qty␟stream id."""
        return SEPARATOR.join((self.sku, self.user, str(self.qty), self.stream_id))

    @classmethod
    def decode(cls, value: str) -> IndexEntry:
        """Inverse of `encode`; ValueError on anything else. User ids never contain the separator."""
        sku, user, qty, stream_id = value.split(SEPARATOR)
        return cls(sku, user, int(qty), stream_id)
