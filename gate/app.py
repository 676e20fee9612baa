"""The Litestar app: HTTP contract of DESIGN.md, problem+json errors, wired in the lifespan.

`create_app(settings)` is the factory; `app_from_env()` builds settings from the environment
(used by the ASGI servers `flashgate gate` starts).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from prometheus_client import CONTENT_TYPE_LATEST

from flashgate.events import Qty
from gate.admission import AdmitRequest
from gate.answers import PROBLEM_JSON, Answer, error_answer, problem
from gate.core import Gate
from gate.errors import BadRequest, GateError, Overloaded
from gate.settings import GateSettings

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class OrderBody(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /v1/orders` body. SKUs are restricted to characters that keep Redis hash tags sound."""

    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    qty: Qty


_decode_body = msgspec.json.Decoder(OrderBody).decode
_encode = msgspec.json.Encoder().encode


def respond(answer: Answer) -> Response[bytes]:
    headers: dict[str, str] = {}
    if answer.retry_after_s is not None:
        headers["Retry-After"] = str(answer.retry_after_s)
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    if answer.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(_encode(answer.body), status_code=answer.status, media_type=answer.media_type, headers=headers)


def parse_order(body: bytes, key: str | None) -> OrderBody:
    """Body and Idempotency-Key → OrderBody, or BadRequest (400) with a precise code."""
    try:
        order = _decode_body(body)
    except msgspec.ValidationError as e:
        raise BadRequest(str(e), code="invalid_fields") from e
    except msgspec.DecodeError as e:
        raise BadRequest(f"body is not JSON: {e}", code="malformed_json") from e
    if key is None:
        raise BadRequest("the Idempotency-Key header is required", code="missing_idempotency_key")
    if not IDEMPOTENCY_KEY.match(key):
        raise BadRequest("Idempotency-Key must be 1-128 printable ASCII characters", code="bad_idempotency_key")
    return order


def _gate(request: Request[Any, Any, Any]) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


@post("/v1/orders", status_code=202)
async def create_order(request: Request[Any, Any, Any]) -> Response[bytes]:
    gate = _gate(request)
    if gate.inflight >= gate.settings.max_inflight:
        gate.metrics.shed.inc()
        raise Overloaded(f"more than {gate.settings.max_inflight} admissions in flight")
    metrics = gate.metrics
    started = time.perf_counter()
    gate.inflight += 1
    metrics.inflight.inc()
    try:
        user = gate.identity.user(request.headers)
        key = request.headers.get("idempotency-key")
        order = parse_order(await request.body(), key)
        answer = await gate.desk.place(AdmitRequest(sku=order.sku, user=user, key=str(key), qty=order.qty))
    finally:
        gate.inflight -= 1
        metrics.inflight.dec()
        metrics.redis_breaker_open.set(1 if gate.batcher.breaker.is_open else 0)
    metrics.admission_seconds.observe(time.perf_counter() - started)
    metrics.requests.labels(str(answer.status), answer.code).inc()
    return respond(answer)


@get("/v1/orders/{order_id:str}")
async def order_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    gate = _gate(request)
    user = gate.identity.user(request.headers)
    return respond(await gate.desk.status(request.path_params["order_id"], user))


@get("/health/live")
async def live() -> Response[bytes]:
    return Response(b'{"status":"ok"}', media_type="application/json")


@get("/health/ready")
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    ok, why = await _gate(request).ready()
    if ok:
        return Response(b'{"status":"ok"}', media_type="application/json")
    return respond(Answer(503, problem(503, "not_ready", "Not ready", why), "not_ready", retry_after_s=1))


@get("/metrics")
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(_gate(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


def on_gate_error(request: Request[Any, Any, Any], exc: GateError) -> Response[bytes]:
    _gate(request).metrics.requests.labels(str(exc.status), exc.code).inc()
    return respond(error_answer(exc))


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    _gate(request).metrics.requests.labels(str(exc.status_code), code).inc()
    body = problem(exc.status_code, code, exc.detail or "HTTP error")
    return Response(_encode(body), status_code=exc.status_code, media_type=PROBLEM_JSON)


def on_crash(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", exc_info=exc)
    body = problem(500, "internal", "Internal error")
    return Response(_encode(body), status_code=500, media_type=PROBLEM_JSON)


def create_app(settings: GateSettings) -> Litestar:
    """Build the app; nothing connects until the lifespan starts."""
    gate = Gate(settings)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await gate.start()
        try:
            yield
        finally:
            await gate.stop()

    app = Litestar(
        route_handlers=[create_order, order_status, live, ready, metrics_endpoint],
        lifespan=[lifespan],
        exception_handlers={GateError: on_gate_error, HTTPException: on_http_error, Exception: on_crash},
        request_max_body_size=settings.body_limit_bytes,
        openapi_config=None,
    )
    app.state.gate = gate
    return app


def app_from_env() -> Litestar:
    """ASGI factory for the servers: settings from the environment, built in this worker process."""
    return create_app(GateSettings.from_env())
