"""The request fingerprint stored with an idempotency answer: shared by the gate and the reconciler."""

from __future__ import annotations

import hashlib


def request_fingerprint(sku: str, qty: int) -> str:
    """What makes a retry "the same request": the body fields (user and key are in the key name).

    The reconciler recomputes it to rebuild idempotency answers after Redis lost its data, so
    it must stay a function of the order's own fields.
    """
    return hashlib.blake2b(f"{sku}\x00{qty}".encode(), digest_size=8).hexdigest()
