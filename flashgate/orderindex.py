"""The order index: order id → (sku, user, qty, outbox entry), written by admit.lua in the SKU's slot.

`GET /v1/orders/{id}` and the reconciler know only the order id, yet admission must write the
index in the same Redis Cluster slot as every other key of its call. So the order id carries the
slot: a UUIDv7 (RFC 9562) whose first 14 bits of `rand_b` are the SKU's cluster slot, and the
index lives in a hash per (slot, day) named with a hash tag that maps to that slot. The day comes
from the UUIDv7 timestamp, so a whole day's index expires at once (TTL = idempotency TTL + 1 day).

Layout of the 128 bits: 48 unix_ts_ms | 4 version (7) | 12 rand_a | 2 variant (0b10) |
14 slot | 48 rand. 60 random bits per millisecond remain.
"""

from __future__ import annotations

import binascii
import os
import time
import uuid
from dataclasses import dataclass
from functools import cache

SLOTS = 16384
DAY_MS = 86_400_000
SEPARATOR = "\x1f"


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
    """`n` order ids of one millisecond for `slot`, from one read of the OS's random source."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    head = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (0b10 << 62) | ((slot % SLOTS) << 48)
    rand = os.urandom(8 * n)
    ids = []
    for i in range(n):
        r = int.from_bytes(rand[8 * i : 8 * i + 8], "big")
        ids.append(uuid.UUID(int=head | ((r >> 52) << 64) | (r & ((1 << 48) - 1))))
    return ids


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


def index_ttl_s(idem_ttl_s: int) -> int:
    """How long a day's index hash lives: past the last order of the day by the idempotency TTL."""
    return idem_ttl_s + DAY_MS // 1000


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What Redis remembers of an admitted order: its SKU, buyer, units and outbox entry id."""

    sku: str
    user: str
    qty: int
    stream_id: str

    def encode(self) -> str:
        """The hash value admit.lua writes (it builds the same string: sku␟user␟qty␟stream id)."""
        return SEPARATOR.join((self.sku, self.user, str(self.qty), self.stream_id))

    @classmethod
    def decode(cls, value: str) -> IndexEntry:
        """Inverse of `encode`; ValueError on anything else. User ids never contain the separator."""
        sku, user, qty, stream_id = value.split(SEPARATOR)
        return cls(sku, user, int(qty), stream_id)
