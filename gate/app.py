"""The Litestar app: HTTP contract of docs/http-api.md, problem+json errors, wired in the lifespan.

`create_app(settings)` is the factory; `app_from_env()` builds settings from the environment
(used by the ASGI servers `flashgate gate` starts).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.types import Message
from litestar.types import Scope as LitestarScope
from prometheus_client import CONTENT_TYPE_LATEST

from flashgate import logs
from gate import openapi
from gate.answers import Answer, error_answer, problem
from gate.core import Gate
from gate.errors import GateError
from gate.fastpath import OrderHandler, Receive, Scope, Send, order_handler
from gate.settings import GateSettings
from gate.wire import REQUEST_ID, Wire

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
# docs/problems.md: in the package when installed from the wheel (pyproject's force-include), else the checkout's.
PROBLEMS_PAGES = (
    Path(__file__).resolve().parent / "problems.md",
    Path(__file__).resolve().parent.parent / "docs" / "problems.md",
)
_REQUEST_ID = REQUEST_ID.encode()


def respond(request: Request[Any, Any, Any], answer: Answer) -> Response[bytes]:
    """An Answer as a Litestar Response (the routes other than POST /v1/orders), rendered by the gate's Wire."""
    wire = _gate(request).wire
    rid = wire.scope_request_id(request.scope)
    headers = {name.decode(): value.decode() for name, value in wire.headers(answer, rid)}
    return Response(wire.body(answer, rid), status_code=answer.status, media_type=answer.media_type, headers=headers)


def _gate(request: Request[Any, Any, Any]) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


@get("/v1/orders/{order_id:str}", operation_class=openapi.ORDER_STATUS, security=openapi.BUYER)
async def order_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Where the buyer's order is."""
    gate = _gate(request)
    user = gate.identity.user(request.headers)
    return respond(request, await gate.desk.status(request.path_params["order_id"], user))


@get("/health/live", operation_class=openapi.LIVE)
async def live() -> Response[bytes]:
    """The process serves HTTP; checks nothing else (a liveness probe must not fail on a dependency)."""
    return Response(b'{"status":"ok"}', media_type="application/json")


@get("/health/ready", operation_class=openapi.READY)
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    """200 while this process can admit (ok or degraded: Kafka unreachable); 503 not_ready otherwise."""
    health = await _gate(request).health()
    if health.ready:
        return Response(msgspec.json.encode(health.body()), media_type="application/json")
    body = problem(503, "not_ready", "Not ready", health.why) | {"redis": health.redis, "kafka": health.kafka}
    return respond(request, Answer(503, body, "not_ready", retry_after_s=1))


@get("/metrics", operation_class=openapi.METRICS)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    gate = _gate(request)
    gate.publish_metrics()
    return Response(gate.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@get("/problems", operation_class=openapi.PROBLEM_PAGE)
async def problems_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """What each problem `code` means (docs/problems.md): the default base of problem `type` URIs."""
    page: bytes | None = request.app.state.problems_page
    if page is None:
        raise HTTPException(status_code=404, detail="docs/problems.md is not installed here")
    return Response(page, media_type="text/markdown")


def on_gate_error(request: Request[Any, Any, Any], exc: GateError) -> Response[bytes]:
    _gate(request).metrics.requests[(str(exc.status), exc.code)] += 1
    return respond(request, error_answer(exc))


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    _gate(request).metrics.requests[(str(exc.status_code), code)] += 1
    body = problem(exc.status_code, code, exc.detail or "HTTP error")
    # Litestar's own headers (Allow on a 405) are part of the answer.
    extra = tuple((k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items())
    return respond(request, Answer(exc.status_code, body, code, headers=extra))


def on_crash(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", exc_info=exc)
    return respond(request, Answer(500, problem(500, "internal", "Internal error"), "internal"))


def request_id_hook(wire: Wire) -> Any:
    """A Litestar `before_send` hook: X-Request-Id on every answer that does not have it yet (docs, 404s)."""

    async def add_request_id(message: Message, scope: LitestarScope) -> None:
        if message["type"] == "http.response.start":
            headers: list[tuple[bytes, bytes]] = message.setdefault("headers", [])  # type: ignore[assignment]
            if not any(name.lower() == _REQUEST_ID for name, _ in headers):
                headers.append((_REQUEST_ID, wire.scope_request_id(scope)))

    return add_request_id


class GateApp:
    """The ASGI app the servers run: `POST /v1/orders` straight to the order handler, the rest to Litestar.

    Skipping Litestar's router and exception middleware on the one hot route saves them on every
    order; `state` and `lifespan()` are the Litestar app's (tests and the lifespan use them).
    """

    def __init__(self, litestar: Litestar, orders: OrderHandler) -> None:
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


# Young-generation threshold once the app has started (CPython's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Keep the collector off the heap built at start-up: it lives as long as the process.

    gc.freeze() moves every object alive now (modules, the Litestar app, compiled scripts) to a
    generation the collector never scans; an order's short-lived objects die by reference count,
    and a larger young threshold lets fewer collections run while orders are in flight.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def create_app(settings: GateSettings) -> GateApp:
    """Build the app; nothing connects until the lifespan starts."""
    gate = Gate(settings)
    orders = order_handler(gate)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await gate.start()
        settle_heap()
        try:
            yield
        finally:
            await gate.stop()

    app = Litestar(
        route_handlers=[openapi.order_route(orders), order_status, live, ready, metrics_endpoint, problems_page],
        lifespan=[lifespan],
        exception_handlers={GateError: on_gate_error, HTTPException: on_http_error, Exception: on_crash},
        before_send=[request_id_hook(gate.wire)],
        logging_config=None,  # the process's own (flashgate/logs.py), not Litestar's
        request_max_body_size=settings.body_limit_bytes,
        openapi_config=OpenAPIConfig(
            title="flashgate",
            version="1",
            description=openapi.DESCRIPTION,
            path="/schema",
            components=openapi.components(settings.auth),
            render_plugins=[ScalarRenderPlugin()],
        ),
    )
    app.state.gate = gate
    app.state.problems_page = next((p.read_bytes() for p in PROBLEMS_PAGES if p.is_file()), None)
    return GateApp(app, orders)


def app_from_env() -> GateApp:
    """ASGI factory for the servers: settings and log format from the environment, built in this worker process."""
    logs.setup(*logs.from_env())
    return create_app(GateSettings.from_env())
