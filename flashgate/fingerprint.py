"""The stored answer of an idempotency key and its request fingerprint: shared by the gate and the reconciler."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=4096)  # a flash sale asks for few (sku, qty) pairs; the hash is per request otherwise
def request_fingerprint(sku: str, qty: int) -> str:
    """What makes a retry "the same request": the body fields (user and key are in the key name).

    The reconciler recomputes it to rebuild idempotency answers after Redis lost its data, so
    it must stay a function of the order's own fields.
    """
    return hashlib.blake2b(f"{sku}\x00{qty}".encode(), digest_size=8).hexdigest()


SEPARATOR = "\x1f"

# How long a stored answer is replayed at least (FLASHGATE_IDEM_TTL_S): the gate writes answers
# with it and the reconciler restores and reads them with it, so both take this one default.
# admit.lua keeps an answer between this and twice this (docs/architecture.md, Redis keys).
DEFAULT_IDEM_TTL_S = 86_400


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The value under `idem:{sku}:<user>:<key>`: one string `f␟c␟o␟t␟x` with a TTL.

    f request fingerprint, c admit.lua code (0 accepted, 5 ended, 7 user limit, 8 sold out),
    o order id, t accepted_at µs, x outbox stream id ("" once unknown); o, t and x are empty
    for refusals. admit.lua and idem_restore.lua write this same layout; one string with
    SET … EX costs Redis one write where a hash and its EXPIRE cost two.
    """

    fingerprint: str
    code: int
    order_id: str = ""
    accepted_at_us: int = 0
    stream_id: str = ""

    def encode(self) -> str:
        t = str(self.accepted_at_us) if self.order_id else ""
        return SEPARATOR.join((self.fingerprint, str(self.code), self.order_id, t, self.stream_id))

    @classmethod
    def decode(cls, value: str) -> StoredAnswer:
        """Inverse of `encode`; ValueError on anything else."""
        f, c, o, t, x = value.split(SEPARATOR)
        return cls(f, int(c), o, int(t or 0), x)
