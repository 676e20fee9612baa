"""The outbox stream entry: the orders of one admit.lua call not yet known to be in Kafka.

admit.lua writes one entry per call that admitted anything, whatever the number of orders:

    XADD outbox:{sku} * t <accepted_at µs> b <order>␞<order>␞…     order = o␟u␟q␟k␟p

(␞ is \\x1e, ␟ is \\x1f: order id, user, qty, idempotency key, traceparent or "" for none; users
and keys are printable ASCII, so neither separator can occur inside a field.) One entry per call
means one XADD and, after delivery, one XDEL per batch instead of per order: the entry leaves the
outbox only when every one of its orders is in Kafka (gate/outbox.py, `EntryDelivery`).

Entries of the earlier layout, one order each (`o u q k t [p]`, written by gates before this one
during a rolling upgrade), are still read. The gate's relay, the reconciler and `flashgate order
show` read both with `decode_entry`; `entry_fields` builds the current layout from Python, for
tests and tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ORDER_SEPARATOR = "\x1e"
FIELD_SEPARATOR = "\x1f"


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


@dataclass(frozen=True, slots=True)
class OutboxOrder:
    """One order of an outbox entry; `stream_id` is the entry's Redis stream id (Redis time at admission)."""

    stream_id: str
    order_id: str
    user: str
    qty: int
    key: str
    accepted_at_us: int
    trace: str = ""  # the order's traceparent, "" for none

    def packed(self) -> str:
        """This order inside an entry's `b` field."""
        return FIELD_SEPARATOR.join((self.order_id, self.user, str(self.qty), self.key, self.trace))


def entry_fields(orders: Sequence[OutboxOrder]) -> dict[str, str]:
    """The stream entry's fields, as admit.lua XADDs them (the orders of one call share accepted_at)."""
    if not orders or len({o.accepted_at_us for o in orders}) != 1:
        raise ValueError("an outbox entry holds one or more orders admitted at the same time")
    return {"t": str(orders[0].accepted_at_us), "b": ORDER_SEPARATOR.join(o.packed() for o in orders)}


def decode_entry(stream_id: str | bytes, flat: Sequence[str | bytes]) -> list[OutboxOrder]:
    """The orders of one entry from its id and flat field list (XRANGE's reply); KeyError or ValueError if malformed."""
    if len(flat) % 2:
        raise ValueError(f"odd field list of {len(flat)} items")
    f = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    sid, at = _text(stream_id), int(f["t"])
    if "b" not in f:  # the earlier layout: one order per entry
        return [OutboxOrder(sid, f["o"], f["u"], int(f["q"]), f["k"], at, f.get("p", ""))]
    orders = []
    for packed in f["b"].split(ORDER_SEPARATOR):
        parts = packed.split(FIELD_SEPARATOR)
        if len(parts) != 5:
            raise ValueError(f"an order of {len(parts)} fields instead of 5: {packed!r}")
        order_id, user, qty, key, trace = parts
        orders.append(OutboxOrder(sid, order_id, user, int(qty), key, at, trace))
    return orders
