"""The Litestar app: HTTP contract of DESIGN.md, problem+json errors, wired in the lifespan.

`create_app(settings)` is the factory; `app_from_env()` builds settings from the environment
(used by the ASGI servers `flashgate gate` starts).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from prometheus_client import CONTENT_TYPE_LATEST

from gate.answers import PROBLEM_JSON, Answer, error_answer, problem
from gate.core import Gate
from gate.errors import GateError
from gate.fastpath import ASGIApp, Receive, Scope, Send, order_handler, order_route
from gate.settings import GateSettings

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
_encode = msgspec.json.Encoder().encode


def respond(answer: Answer) -> Response[bytes]:
    """An Answer as a Litestar Response (the routes other than POST /v1/orders)."""
    headers: dict[str, str] = {}
    if answer.retry_after_s is not None:
        headers["Retry-After"] = str(answer.retry_after_s)
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    if answer.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(_encode(answer.body), status_code=answer.status, media_type=answer.media_type, headers=headers)


def _gate(request: Request[Any, Any, Any]) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


@get("/v1/orders/{order_id:str}")
async def order_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    gate = _gate(request)
    user = gate.identity.user(request.headers)
    return respond(await gate.desk.status(request.path_params["order_id"], user))


@get("/health/live")
async def live() -> Response[bytes]:
    """The process serves HTTP; checks nothing else (a liveness probe must not fail on a dependency)."""
    return Response(b'{"status":"ok"}', media_type="application/json")


@get("/health/ready")
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    """200 while this process can admit (ok or degraded: Kafka unreachable); 503 not_ready otherwise."""
    health = await _gate(request).health()
    if health.ready:
        return Response(_encode(health.body()), media_type="application/json")
    body = problem(503, "not_ready", "Not ready", health.why) | {"redis": health.redis, "kafka": health.kafka}
    return respond(Answer(503, body, "not_ready", retry_after_s=1))


@get("/metrics")
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    gate = _gate(request)
    gate.publish_metrics()
    return Response(gate.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def on_gate_error(request: Request[Any, Any, Any], exc: GateError) -> Response[bytes]:
    _gate(request).metrics.requests[(str(exc.status), exc.code)] += 1
    return respond(error_answer(exc))


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    _gate(request).metrics.requests[(str(exc.status_code), code)] += 1
    body = problem(exc.status_code, code, exc.detail or "HTTP error")
    return Response(_encode(body), status_code=exc.status_code, media_type=PROBLEM_JSON)


def on_crash(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", exc_info=exc)
    body = problem(500, "internal", "Internal error")
    return Response(_encode(body), status_code=500, media_type=PROBLEM_JSON)


class GateApp:
    """The ASGI app the servers run: `POST /v1/orders` straight to the order handler, the rest to Litestar.

    Skipping Litestar's router and exception middleware on the one hot route saves them on every
    order; `state` and `lifespan()` are the Litestar app's (tests and the lifespan use them).
    """

    def __init__(self, litestar: Litestar, orders: ASGIApp) -> None:
        self.litestar = litestar
        self._orders = orders

    @property
    def state(self) -> State:
        return self.litestar.state

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        return self.litestar.lifespan()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/orders":
            await self._orders(scope, receive, send)
        else:
            await self.litestar(scope, receive, send)  # type: ignore[arg-type]


def create_app(settings: GateSettings) -> GateApp:
    """Build the app; nothing connects until the lifespan starts."""
    gate = Gate(settings)
    orders = order_handler(gate)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await gate.start()
        try:
            yield
        finally:
            await gate.stop()

    app = Litestar(
        route_handlers=[order_route(orders), order_status, live, ready, metrics_endpoint],
        lifespan=[lifespan],
        exception_handlers={GateError: on_gate_error, HTTPException: on_http_error, Exception: on_crash},
        request_max_body_size=settings.body_limit_bytes,
        openapi_config=None,
    )
    app.state.gate = gate
    return GateApp(app, orders)


def app_from_env() -> GateApp:
    """ASGI factory for the servers: settings from the environment, built in this worker process."""
    return create_app(GateSettings.from_env())
