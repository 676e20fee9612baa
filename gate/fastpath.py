"""POST /v1/orders as a raw ASGI handler: no per-request framework objects.

The handler reads the few headers it needs straight from the ASGI scope, reads the body with a
size limit, and renders its answer with the same `Wire` as the Litestar routes (gate/wire.py):
the same headers (X-Request-Id, Retry-After, Idempotent-Replayed, WWW-Authenticate, RateLimit)
and problem documents. The app the servers run (gate/app.py `GateApp`) hands `POST /v1/orders`
to it before Litestar's router and middleware. Litestar also routes to it (other spellings of the
path), through a route that declares the contract for the OpenAPI description and parses nothing
itself (gate/openapi.py `order_route`). Order of checks: in-flight bound (503), identity
(401), body size (413), body complete within FLASHGATE_GATE_BODY_TIMEOUT_MS (408), body (400),
Idempotency-Key (400), then the order path (gate/orders.py). A valid W3C `traceparent` goes with
the order to its outbox entry, its Kafka message and its row (flashgate/tracecontext.py); an
invalid one is ignored, as W3C says. ROUTE_PROBLEMS lists what this
route answers besides the admission outcomes; tests/unit/test_openapi.py holds it to the handler.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import msgspec

from flashgate import tracecontext
from flashgate.events import Qty, Sku
from gate.admission import AdmitRequest
from gate.answers import Answer, error_answer, problem
from gate.deadlines import Deadlines
from gate.errors import (
    BadRequest,
    BodyTimeout,
    BodyTooLarge,
    GateError,
    Overloaded,
    RedisUnavailable,
    Unauthorized,
)
from gate.wire import Wire

if TYPE_CHECKING:
    from flashgate.otel import Tracing

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
_WANTED = {b"idempotency-key", b"x-user-id", b"authorization", b"content-length", b"x-request-id", b"traceparent"}
_ALLOW = ((b"allow", b"POST"),)

# (status, code) of every problem this route answers besides the admission outcomes
# (gate/answers.py PROBLEMS); the OpenAPI description is built from both.
ROUTE_PROBLEMS: tuple[tuple[int, str], ...] = (
    (400, "malformed_json"),
    (400, "invalid_fields"),
    (400, "missing_idempotency_key"),
    (400, "bad_idempotency_key"),
    (Unauthorized.status, Unauthorized.code),
    (BodyTimeout.status, BodyTimeout.code),
    (BodyTooLarge.status, BodyTooLarge.code),
    (Overloaded.status, Overloaded.code),
    (RedisUnavailable.status, RedisUnavailable.code),
    (500, "internal"),
)


class OrderBody(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /v1/orders` body. SKUs are restricted to characters that keep Redis hash tags sound."""

    sku: Sku
    qty: Qty


class _NumberQty(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    qty: float


_decode_body = msgspec.json.Decoder(OrderBody).decode
_decode_number_qty = msgspec.json.Decoder(_NumberQty).decode


def _integral_qty(body: bytes) -> OrderBody | None:
    """A body whose qty is written as a number with no fraction (`2.0`, `2e0`): JSON Schema's integer 2.

    Tried only after the strict decoder refused the body; None if that was not the reason.
    """
    try:
        loose = _decode_number_qty(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not loose.qty.is_integer() or not 1 <= loose.qty <= 1000:
        return None
    try:
        return msgspec.convert({"sku": loose.sku, "qty": int(loose.qty)}, OrderBody)
    except msgspec.ValidationError:
        return None


def parse_order(body: bytes, key: str | None) -> OrderBody:
    """Body and Idempotency-Key → OrderBody, or BadRequest (400) with a precise code."""
    try:
        order = _decode_body(body)
    except msgspec.ValidationError as e:
        order_or_none = _integral_qty(body)
        if order_or_none is None:
            raise BadRequest(str(e), code="invalid_fields") from e
        order = order_or_none
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}", code="malformed_json") from e
    if key is None:
        raise BadRequest("the Idempotency-Key header is required", code="missing_idempotency_key")
    if not IDEMPOTENCY_KEY.match(key):
        raise BadRequest("Idempotency-Key must be 1-128 printable ASCII characters", code="bad_idempotency_key")
    return order


class ClientGone(Exception):
    """The client disconnected before its body arrived: nothing to answer."""


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED:
            found[name.decode("latin-1")] = value.decode("latin-1")
    return found


async def _body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_answer(send: Send, wire: Wire, answer: Answer, rid: bytes) -> None:
    headers, body = wire.raw(answer, rid)
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


OrderHandler = Callable[[Scope, Receive, Send], Awaitable[None]]


def order_handler(gate: Any) -> OrderHandler:
    """The POST /v1/orders ASGI handler of one app, bound to its Gate (gate/core.py)."""
    settings = gate.settings
    metrics = gate.metrics
    desk = gate.desk
    identity = gate.identity
    wire: Wire = gate.wire
    body_deadlines = Deadlines(settings.body_timeout_ms / 1000)

    async def answer(scope: Scope, receive: Receive, headers: dict[str, str]) -> Answer:
        if scope["method"] != "POST":
            refusal = problem(405, "method_not_allowed", "Method Not Allowed")
            return Answer(405, refusal, "method_not_allowed", headers=_ALLOW)
        if gate.inflight >= settings.max_inflight:
            metrics.events["shed"] += 1
            return error_answer(Overloaded(f"more than {settings.max_inflight} admissions in flight"))
        started = time.perf_counter()
        gate.inflight += 1
        try:
            user = identity.user(headers)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > settings.body_limit_bytes:
                raise BodyTooLarge
            key = headers.get("idempotency-key")
            try:
                body = await body_deadlines.within(_body(receive, settings.body_limit_bytes))
            except TimeoutError:
                raise BodyTimeout from None
            order = parse_order(body, key)
            trace = tracecontext.parse(headers.get("traceparent"))
            result: Answer = await desk.place(AdmitRequest(order.sku, user, str(key), order.qty, trace))
        except GateError as e:
            result = error_answer(e)
        finally:
            gate.inflight -= 1
        metrics.admission_seconds.observe(time.perf_counter() - started)
        return result

    async def create_order(scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        rid = wire.request_id(headers.get("x-request-id"))
        tracing: Tracing | None = gate.tracing
        if tracing is None:
            result = await _respond(answer, scope, receive, headers)
        else:
            result = await _traced(tracing, answer, scope, receive, headers, rid)
        if result is None:
            return  # the client is gone: nobody to answer
        metrics.requests[(str(result.status), result.code)] += 1
        await send_answer(send, wire, result, rid)

    return create_order


Respond = Callable[[Scope, Receive, dict[str, str]], Awaitable[Answer]]


async def _respond(answer: Respond, scope: Scope, receive: Receive, headers: dict[str, str]) -> Answer | None:
    """The order's answer; None if the client left before its body arrived; 500 for a bug."""
    try:
        return await answer(scope, receive, headers)
    except ClientGone:
        return None
    except Exception:
        log.exception("unhandled error")
        return Answer(500, problem(500, "internal", "Internal error"), "internal")


async def _traced(
    tracing: Tracing, answer: Respond, scope: Scope, receive: Receive, headers: dict[str, str], rid: bytes
) -> Answer | None:
    """`_respond` inside this request's span (OpenTelemetry export on); the order carries the span's context."""
    span, headers["traceparent"] = tracing.start_order(tracecontext.parse(headers.get("traceparent")))
    result = await _respond(answer, scope, receive, headers)
    if result is None:
        tracing.end_order(span, status=None, code="client_gone", order_id=None, request_id=rid.decode())
    else:
        order_id = result.body.get("order_id") if result.status == 202 else None
        tracing.end_order(span, status=result.status, code=result.code, order_id=order_id, request_id=rid.decode())
    return result
