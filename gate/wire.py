"""Answers as bytes on the wire, one renderer for the fast order route and the Litestar routes.

`Wire` adds what an Answer does not carry itself: the problem `type` (FLASHGATE_GATE_PROBLEM_BASE_URL
+ `#` + code, an anchor of docs/problems.md) and `instance` (the request id), the request id
header, and Retry-After. Request ids: an incoming `X-Request-Id` of 1-128 characters from
`[A-Za-z0-9._~-]` (so it is also a valid URI reference for `instance`) is kept; anything else is
replaced by this process's next id, a random per-process prefix and a counter (no syscall, no
UUID per request). 503s get a Retry-After drawn uniformly from UNAVAILABLE_RETRY_AFTER_S, so
buyers shed in the same instant do not all come back in the same second.
"""

from __future__ import annotations

import itertools
import os
import random
import re
from typing import Any

import msgspec

from gate.answers import PROBLEM_JSON, Answer

REQUEST_ID = "x-request-id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
UNAVAILABLE_RETRY_AFTER_S = (1, 3)  # inclusive bounds of Retry-After on 503, whole seconds

Header = tuple[bytes, bytes]
_REQUEST_ID = REQUEST_ID.encode()
_JSON = (b"content-type", b"application/json")
_PROBLEM = (b"content-type", PROBLEM_JSON.encode())
_REPLAYED = (b"idempotent-replayed", b"true")
_BEARER = (b"www-authenticate", b"Bearer")
_SCOPE_KEY = "flashgate.request_id"


class Wire:
    """Renders Answers for one app; `rng` only chooses the jittered Retry-After (tests seed it)."""

    def __init__(self, problem_base_url: str, *, rng: random.Random | None = None) -> None:
        self._type = problem_base_url + "#"
        # Random per process, so ids of two processes or two runs never collide; then a counter.
        self._prefix = os.urandom(4).hex().encode() + b"-"
        self._next = itertools.count(1).__next__
        self._rng = rng or random.Random()  # noqa: S311 - spreading retries, not a secret
        low, high = UNAVAILABLE_RETRY_AFTER_S
        self._retry_unavailable = [str(s).encode() for s in range(low, high + 1)]

    def problem_type(self, code: str) -> str:
        return self._type + code

    def request_id(self, incoming: str | None) -> bytes:
        """The incoming X-Request-Id if well-formed, else a new id of this process."""
        if incoming is not None and REQUEST_ID_PATTERN.match(incoming):
            return incoming.encode()
        return b"%s%x" % (self._prefix, self._next())

    def scope_request_id(self, scope: Any) -> bytes:
        """The request id of a Litestar request: decided once, then kept in its ASGI scope."""
        rid: bytes | None = scope.get(_SCOPE_KEY)
        if rid is None:
            incoming = next((v for k, v in scope["headers"] if k == _REQUEST_ID), None)
            rid = scope[_SCOPE_KEY] = self.request_id(None if incoming is None else incoming.decode("latin-1"))
        return rid

    def body(self, answer: Answer, rid: bytes) -> bytes:
        if answer.status < 400:
            return _encode(answer.body)
        return _encode({"type": self._type + answer.code, **answer.body, "instance": rid.decode()})

    def headers(self, answer: Answer, rid: bytes) -> list[Header]:
        """Every header but content-type and content-length (the Litestar routes let Litestar add those)."""
        headers = [(_REQUEST_ID, rid)]
        self._add_headers(answer, headers)
        return headers

    def raw(self, answer: Answer, rid: bytes) -> tuple[list[Header], bytes]:
        """Complete ASGI headers and body (the fast route): one list, nothing else per 202."""
        body = self.body(answer, rid)
        headers = [
            _PROBLEM if answer.status >= 400 else _JSON,
            (b"content-length", b"%d" % len(body)),
            (_REQUEST_ID, rid),
        ]
        self._add_headers(answer, headers)
        return headers, body

    def _add_headers(self, answer: Answer, headers: list[Header]) -> None:
        if answer.retry_after_s is not None:
            headers.append((b"retry-after", self._retry_after(answer)))
        if answer.replayed:
            headers.append(_REPLAYED)
        if answer.status == 401:
            headers.append(_BEARER)
        if answer.headers:
            headers.extend(answer.headers)

    def _retry_after(self, answer: Answer) -> bytes:
        if answer.status == 503:
            return self._rng.choice(self._retry_unavailable)
        return b"%d" % (answer.retry_after_s or 0)


_encode = msgspec.json.Encoder().encode
