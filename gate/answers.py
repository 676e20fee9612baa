"""Admission outcomes → HTTP answers (status, JSON body, Retry-After): pure, no I/O.

Problem bodies here carry `title`, `status`, `code` (and `detail`); `type` and `instance` are
added where the answer is rendered (gate/wire.py), since they depend on settings and the request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from gate.admission import Admission, AdmitRequest, Code, IndexedOrder
from gate.errors import GateError, NotFound
from gate.ratelimit import allowance_fields
from gate.records import PersistedOrder

PROBLEM_JSON = "application/problem+json"

# Code → (HTTP status, stable problem code, title)
PROBLEMS: dict[Code, tuple[int, str, str]] = {
    Code.MISMATCH: (422, "idempotency_key_reused", "Idempotency-Key reused with a different request"),
    Code.UNKNOWN_SKU: (404, "unknown_sku", "No sale for this SKU"),
    Code.NOT_STARTED: (409, "sale_not_started", "The sale has not started"),
    Code.ENDED: (409, "sale_ended", "The sale has ended"),
    Code.RATE_LIMITED: (429, "rate_limited", "Too many requests; nothing was consumed"),
    Code.USER_LIMIT: (409, "user_limit", "Per-user purchase limit reached"),
    Code.SOLD_OUT: (409, "sold_out", "Sold out"),
}


class Answer(msgspec.Struct, frozen=True):
    """One HTTP answer; `code` is the order status or the problem code (also the metrics label)."""

    status: int
    body: dict[str, Any]
    code: str
    retry_after_s: int | None = None
    replayed: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()  # more response headers, lower-case names (RateLimit, Allow)

    @property
    def media_type(self) -> str:
        return PROBLEM_JSON if self.status >= 400 else "application/json"


def problem(status: int, code: str, title: str, detail: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem document with our stable `code`, less `type` and `instance` (gate/wire.py)."""
    body: dict[str, Any] = {"title": title, "status": status, "code": code}
    if detail and detail != title:
        body["detail"] = detail
    return body


def error_answer(e: GateError) -> Answer:
    return Answer(e.status, problem(e.status, e.code, e.title, e.detail), e.code, e.retry_after_s)


def order_answer(adm: Admission, req: AdmitRequest, *, delivered: bool = False, now_ms: int | None = None) -> Answer:
    """The answer for an admission (fresh or replayed). `delivered`: Kafka acked it within the budget.

    `sale_not_started` says when the sale opens: `starts_in_ms` (the store's clock, as admit.lua
    judged it), `starts_at` (that added to `now_ms`, Unix ms, when given) and Retry-After.
    """
    if adm.code is Code.ACCEPTED:
        queued = adm.pending if adm.replayed else not delivered
        status = "queued" if queued else "accepted"
        body = {"order_id": adm.order_id, "sku": req.sku, "qty": req.qty, "status": status}
        headers = allowance_fields(adm.allowance) if adm.allowance else ()
        return Answer(202, body, status, replayed=adm.replayed, headers=headers)
    http_status, code, title = PROBLEMS[adm.code]
    body = problem(http_status, code, title)
    retry_after = None
    if adm.code in (Code.RATE_LIMITED, Code.NOT_STARTED):
        retry_after = max(1, -(-adm.wait_ms // 1000))
    if adm.code is Code.NOT_STARTED:
        body["starts_in_ms"] = adm.wait_ms
        if now_ms is not None:
            opens = datetime.fromtimestamp((now_ms + adm.wait_ms) / 1000, UTC)
            body["starts_at"] = opens.isoformat(timespec="milliseconds")
    return Answer(http_status, body, code, retry_after, replayed=adm.replayed)


def status_answer(order_id: str, user: str, row: PersistedOrder | None, indexed: IndexedOrder | None) -> Answer:
    """Where an order is: `persisted` (PostgreSQL row), else `queued`/`accepted` (Redis); NotFound otherwise.

    Another buyer's order is reported as unknown, never as someone else's.
    """
    if row is not None:
        if row.user != user:
            raise NotFound("no such order")
        body = {"order_id": order_id, "sku": row.sku, "qty": row.qty, "status": "persisted"}
        return Answer(200, {**body, "persisted_at": row.persisted_at.isoformat()}, "persisted")
    if indexed is None or indexed.user != user:
        raise NotFound("no such order")
    status = "queued" if indexed.pending else "accepted"
    return Answer(200, {"order_id": order_id, "sku": indexed.sku, "qty": indexed.qty, "status": status}, status)
