"""W3C Trace Context (`traceparent`), the one definition for the gate, the relay and the worker.

A buyer's client may send `traceparent: 00-<trace id>-<parent id>-<flags>` with its order. The
gate keeps a valid one with the order: in its outbox entry, as the Kafka message's `traceparent`
header, and as `orders.trace_id`, so one complaint can be followed from the 202 to the row
(`flashgate order show`). An order sent without one (or with one that is not valid, which W3C
says to ignore) carries nothing: its order id is its trace key, and its row's trace_id is NULL.
Nothing is generated per order, so an untraced order costs nothing more anywhere.

`parse` follows the W3C rules a receiver applies (https://www.w3.org/TR/trace-context/#traceparent-header):
version 00 is exactly four fields; a later version may append fields after the flags, which are
kept; version ff, upper-case hex, and an all-zero trace id or parent id are invalid.
"""

from __future__ import annotations

import re
import uuid

HEADER = "traceparent"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?")
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16
MAX_LENGTH = 512  # a header longer than this is not a traceparent worth carrying


def parse(value: str | None) -> str:
    """The traceparent to carry with an order: `value` if valid, else "" (none)."""
    if not value or len(value) > MAX_LENGTH:
        return ""
    m = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if m is None:
        return ""
    version, trace, parent, _flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or trace == _ZERO_TRACE or parent == _ZERO_PARENT:
        return ""
    return m.group(0)


def trace_id(traceparent: str | bytes | None) -> uuid.UUID | None:
    """The trace id of a traceparent `parse` kept (its 16 bytes as a UUID), or None."""
    if not traceparent:
        return None
    text = traceparent.decode("latin-1") if isinstance(traceparent, bytes) else traceparent
    if not parse(text):
        return None
    return uuid.UUID(hex=text[3:35])
