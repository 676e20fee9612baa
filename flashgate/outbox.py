"""The outbox stream entry: one admitted order not yet known to be in Kafka.

admit.lua writes it (`XADD outbox:{sku} * o <order id> u <user> q <qty> k <key> t <accepted_at
µs> [p <traceparent>]`, `p` only for an order that came with a trace context); the gate's relay
and the reconciler read it with `OutboxEntry.decode`. `fields` is the same layout from Python, for
tests and tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox stream entry; `stream_id` is its Redis stream id (Redis time at admission)."""

    stream_id: str
    order_id: str
    user: str
    qty: int
    key: str
    accepted_at_us: int
    trace: str = ""  # the order's traceparent, "" for none

    def fields(self) -> dict[str, str]:
        """The stream entry's fields, as admit.lua XADDs them."""
        f = {"o": self.order_id, "u": self.user, "q": str(self.qty), "k": self.key, "t": str(self.accepted_at_us)}
        if self.trace:
            f["p"] = self.trace
        return f

    @classmethod
    def decode(cls, stream_id: str | bytes, flat: Sequence[str | bytes]) -> OutboxEntry:
        """An entry from its id and flat field list (XRANGE's reply); KeyError or ValueError if malformed."""
        if len(flat) % 2:
            raise ValueError(f"odd field list of {len(flat)} items")
        f = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return cls(_text(stream_id), f["o"], f["u"], int(f["q"]), f["k"], int(f["t"]), f.get("p", ""))
