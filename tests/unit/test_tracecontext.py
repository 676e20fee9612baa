"""W3C traceparent: what the gate keeps and what it ignores, and the trace id the worker stores."""

from __future__ import annotations

import uuid

import pytest

from flashgate import tracecontext

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
VALID = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (VALID, VALID),
        (f"  {VALID}\t", VALID),  # optional whitespace around a header value
        (f"00-{TRACE}-00f067aa0ba902b7-00", f"00-{TRACE}-00f067aa0ba902b7-00"),  # not sampled: still carried
        (f"cc-{TRACE}-00f067aa0ba902b7-01-what-comes-next", f"cc-{TRACE}-00f067aa0ba902b7-01-what-comes-next"),
        (f"cc-{TRACE}-00f067aa0ba902b7-01", f"cc-{TRACE}-00f067aa0ba902b7-01"),
    ],
)
def test_a_valid_traceparent_is_kept(value: str, kept: str) -> None:
    assert tracecontext.parse(value) == kept
    assert tracecontext.trace_id(kept) == uuid.UUID(hex=TRACE)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is invalid
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",  # upper-case hex
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",  # short trace id
        f"00_{TRACE}_00f067aa0ba902b7_01",
        f"cc-{TRACE}-00f067aa0ba902b7-01x",  # a later version's extra fields start with a dash
        f"cc-{TRACE}-00f067aa0ba902b7-01-" + "x" * tracecontext.MAX_LENGTH,  # absurdly long
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert tracecontext.parse(value) == ""
    assert tracecontext.trace_id(value) is None


def test_the_trace_id_comes_from_bytes_too() -> None:
    assert tracecontext.trace_id(VALID.encode()) == uuid.UUID(hex=TRACE)
    assert tracecontext.trace_id(b"00-nope") is None
