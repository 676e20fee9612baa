"""Errors of the gate, each mapped to one HTTP problem at the edge::

GateError                    (status, code; rendered as application/problem+json)
├── BadRequest          400  malformed JSON, bad fields, bad Idempotency-Key
├── Unauthorized        401  missing or invalid bearer token / user id
├── NotFound            404  unknown SKU or order
├── BodyTimeout         408  request body not complete within the body deadline
├── BodyTooLarge        413  request body past the limit
├── Unavailable         503  Redis unreachable, breaker open, or load shed (with Retry-After)
│   ├── RedisUnavailable     Redis failed, timed out or the breaker is open
│   └── Overloaded           too many admissions in flight in this process
└── HandoffError             Kafka producer could not take a message (never reaches HTTP:
                             the order is already in the outbox and is answered `queued`)
"""

from __future__ import annotations


class GateError(Exception):
    """Base of every gate failure; `code` is the stable problem code."""

    status = 500
    code = "internal"
    title = "Internal error"
    retry_after_s: int | None = None

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class BadRequest(GateError):
    status = 400
    code = "bad_request"
    title = "Malformed request"

    def __init__(self, detail: str = "", *, code: str = "bad_request") -> None:
        super().__init__(detail)
        self.code = code


class Unauthorized(GateError):
    status = 401
    code = "unauthorized"
    title = "Missing or invalid credentials"


class NotFound(GateError):
    status = 404
    code = "not_found"
    title = "Not found"


class BodyTimeout(GateError):
    status = 408
    code = "body_timeout"
    title = "Request body not received in time"


class BodyTooLarge(GateError):
    status = 413
    code = "body_too_large"
    title = "Request Entity Too Large"


class Unavailable(GateError):
    status = 503
    code = "unavailable"
    title = "Temporarily unavailable"
    retry_after_s = 1


class RedisUnavailable(Unavailable):
    code = "redis_unavailable"
    title = "Admission store unreachable; nothing was consumed"


class Overloaded(Unavailable):
    code = "overloaded"
    title = "Too many requests in flight; nothing was consumed"


class HandoffError(GateError):
    code = "handoff"
    title = "Kafka producer did not take the message"
