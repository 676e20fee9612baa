"""The OpenAPI 3.1 description at /schema/openapi.json, built from the code that answers.

Litestar builds the document from its routes; each route names an `operation_class` from here
that fills in what Litestar cannot see: the fast order route's body (`OrderBody`, which also
parses it), its headers (the Idempotency-Key pattern the handler checks), and every answer — the
202 and 200 bodies as msgspec Structs, and per status a problem+json schema whose `code` is an
enum of the codes that status can carry (gate/fastpath.py ROUTE_PROBLEMS, gate/answers.py
PROBLEMS, gate/errors.py), with Retry-After, RateLimit, Idempotent-Replayed and X-Request-Id.
Schemas come from msgspec (JSON Schema 2020-12, as OpenAPI 3.1 uses it; exact about extra
fields, unlike Litestar's). The buyer's credential is one security scheme, `buyer`: a bearer JWT,
or the X-User-Id header when the gate runs with FLASHGATE_GATE_AUTH=off.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, cast

import msgspec
from litestar import post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    Components,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.types import ASGIApp
from prometheus_client import CONTENT_TYPE_LATEST

from flashgate.events import Qty
from gate.answers import PROBLEM_JSON, PROBLEMS
from gate.errors import NotFound, RedisUnavailable, Unauthorized
from gate.fastpath import IDEMPOTENCY_KEY, ROUTE_PROBLEMS, OrderBody, OrderHandler
from gate.ratelimit import POLICY
from gate.settings import AuthSettings
from gate.wire import REQUEST_ID_PATTERN, UNAVAILABLE_RETRY_AFTER_S

BUYER: list[dict[str, list[str]]] = [{"buyer": []}]
DESCRIPTION = (
    "A flash-sale order gate: admits exactly as many orders as there is stock, never loses or doubles one. "
    "Every answer carries X-Request-Id; every error is application/problem+json (RFC 9457) with a stable "
    "`code`, explained at the URL of its `type` (docs/problems.md)."
)
_UNSET = msgspec.UNSET


class OrderAnswer(msgspec.Struct):
    """202: the order is admitted; `accepted` once Kafka has it, `queued` while the outbox holds it."""

    order_id: uuid.UUID
    sku: str
    qty: Qty
    status: Literal["accepted", "queued"]


class OrderStatus(msgspec.Struct):
    """Where an order is: `queued` (outbox) → `accepted` (Kafka) → `persisted` (PostgreSQL)."""

    order_id: uuid.UUID
    sku: str
    qty: Qty
    status: Literal["queued", "accepted", "persisted"]
    persisted_at: datetime | msgspec.UnsetType = _UNSET


class Problem(msgspec.Struct):
    """RFC 9457 problem details; switch on `code`, which `type` carries as its fragment."""

    type: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uri-reference"})]
    title: str
    status: int
    code: str
    instance: Annotated[str, msgspec.Meta(description="The request id, also in the X-Request-Id header.")]
    detail: str | msgspec.UnsetType = _UNSET


class Health(msgspec.Struct):
    status: Literal["ok"]


class Readiness(msgspec.Struct):
    """`/health/ready` while this process can admit: "degraded" when Kafka is unreachable (gate/health.py)."""

    status: Literal["ok", "degraded"]
    redis: str
    kafka: str


_MODELS = (OrderBody, OrderAnswer, OrderStatus, Problem, Health, Readiness)
_CAMEL = re.compile(r"(?<=[a-z])([A-Z])")


def _schema(node: Any) -> Any:
    """msgspec's JSON Schema → Litestar's spec objects (camelCase keywords → snake_case fields)."""
    if isinstance(node, list):
        return [_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return Reference(ref=node["$ref"])
    fields: dict[str, Any] = {}
    for key, value in node.items():
        name = _CAMEL.sub(r"_\1", key).lower()
        fields[name] = {k: _schema(v) for k, v in value.items()} if key == "properties" else _schema(value)
    return Schema(**fields)


_, _DEFS = msgspec.json.schema_components(_MODELS)


def _ref(model: type) -> Schema:
    """A body's schema, inline: Litestar fills components.schemas from its own registry only."""
    schema: Schema = _schema(_DEFS[model.__name__])
    return schema


def components(auth: AuthSettings) -> Components:
    """The `buyer` credential of this gate's auth mode."""
    if auth.disabled:
        buyer = SecurityScheme(
            type="apiKey",
            name="X-User-Id",
            security_scheme_in="header",
            description="FLASHGATE_GATE_AUTH=off (local demo, load tests): the buyer's id, 1-128 printable ASCII.",
        )
    else:
        buyer = SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="A JWT (HS256 or RS256, with `sub` and `exp`); `sub` is the buyer. X-User-Id is ignored.",
        )
    return Components(security_schemes={"buyer": buyer})


def _header(description: str, schema: Schema) -> OpenAPIHeader:
    return OpenAPIHeader(description=description, schema=schema)


_INT = Schema(type=OpenAPIType.INTEGER, minimum=1)
REQUEST_ID = _header(
    "This request's id: the X-Request-Id sent, if well-formed, else one the gate made. Also the problem `instance`.",
    Schema(type=OpenAPIType.STRING, pattern=REQUEST_ID_PATTERN.pattern),
)
_low, _high = UNAVAILABLE_RETRY_AFTER_S
RETRY_UNAVAILABLE = _header(
    f"Whole seconds, drawn at random from {_low}-{_high} so that shed buyers do not come back together.",
    Schema(type=OpenAPIType.INTEGER, minimum=_low, maximum=_high),
)
RETRY_LIMITED = _header("Whole seconds until this buyer's next order is let through; nothing was consumed.", _INT)
RETRY_NOT_STARTED = _header("`sale_not_started` only: whole seconds until the sale opens.", _INT)
REPLAYED = _header(
    "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
    Schema(type=OpenAPIType.STRING, enum=["true"]),
)
RATELIMIT = _header(
    f'IETF RateLimit (draft-ietf-httpapi-ratelimit-headers): `"{POLICY}";r=0;t=<seconds>`.',
    Schema(type=OpenAPIType.STRING),
)
RATELIMIT_ADMITTED = _header(
    f'Rate-limited sales only: `"{POLICY}";r=<orders you may still send now>;t=<seconds until the whole burst is '
    "back>` (IETF RateLimit).",
    Schema(type=OpenAPIType.STRING),
)
RATELIMIT_POLICY = _header(
    f'The sale\'s per-buyer limit: `"{POLICY}";q=<orders>;w=<seconds>` (left out if it cannot be read now).',
    Schema(type=OpenAPIType.STRING),
)
WWW_AUTHENTICATE = _header("`Bearer`.", Schema(type=OpenAPIType.STRING))

Headers = dict[str, OpenAPIHeader | Reference]
Responses = dict[str, OpenAPIResponse | Reference]
# Headers some answers carry, by status (X-Request-Id is on all of them).
_HEADERS: dict[int, Headers] = {
    202: {"Idempotent-Replayed": REPLAYED, "RateLimit": RATELIMIT_ADMITTED, "RateLimit-Policy": RATELIMIT_POLICY},
    401: {"WWW-Authenticate": WWW_AUTHENTICATE},
    409: {"Idempotent-Replayed": REPLAYED, "Retry-After": RETRY_NOT_STARTED},
    429: {"Retry-After": RETRY_LIMITED, "RateLimit": RATELIMIT, "RateLimit-Policy": RATELIMIT_POLICY},
    503: {"Retry-After": RETRY_UNAVAILABLE},
}
_REQUIRED_HEADERS = {429: ("Retry-After", "RateLimit"), 503: ("Retry-After",), 401: ("WWW-Authenticate",)}
_NOT_STARTED = {
    "starts_at": Schema(
        type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME, description="`sale_not_started`: when it opens."
    ),
    "starts_in_ms": Schema(type=OpenAPIType.INTEGER, description="`sale_not_started`: milliseconds until it opens."),
}


def _headers(status: int) -> Headers:
    headers: Headers = {"X-Request-Id": REQUEST_ID, **_HEADERS.get(status, {})}
    for name in ("X-Request-Id", *_REQUIRED_HEADERS.get(status, ())):
        header = headers[name]
        assert isinstance(header, OpenAPIHeader)
        headers[name] = OpenAPIHeader(description=header.description, schema=header.schema, required=True)
    return headers


def _problem_response(status: int, codes: Iterable[str]) -> OpenAPIResponse:
    codes = sorted(set(codes))
    properties: dict[str, Any] = {"status": Schema(const=status), "code": Schema(enum=codes)}
    if "sale_not_started" in codes:
        properties.update(_NOT_STARTED)
    schema = Schema(all_of=[_ref(Problem), Schema(properties=properties)])
    return OpenAPIResponse(
        description="Problem codes: " + ", ".join(f"`{c}`" for c in codes) + " (docs/problems.md).",
        headers=_headers(status),
        content={PROBLEM_JSON: OpenAPIMediaType(schema=schema)},
    )


def _json_response(description: str, model: type, status: int) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        headers=_headers(status),
        content={"application/json": OpenAPIMediaType(schema=_ref(model))},
    )


def responses(ok: Mapping[int, OpenAPIResponse], problems: Iterable[tuple[int, str]]) -> Responses:
    """Success answers plus one problem+json answer per status of `problems` (status, code)."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for status, code in problems:
        by_status[status].append(code)
    answers: Responses = {str(s): r for s, r in ok.items()}
    answers.update({str(s): _problem_response(s, codes) for s, codes in sorted(by_status.items())})
    return answers


def documented(
    answers: Responses,
    *,
    parameters: Iterable[Parameter] = (),
    request_body: RequestBody | None = None,
    public: bool = False,
) -> type[Operation]:
    """An Operation class for a route's `operation_class`: Litestar's, with our answers and inputs."""
    extra = list(parameters)

    @dataclass
    class Documented(Operation):
        def __post_init__(self) -> None:
            self.responses = answers
            self.parameters = [*(self.parameters or ()), *extra] or None
            self.request_body = request_body or self.request_body
            if public:
                self.security = []

    return Documented


_REQUEST_ID_PARAM = Parameter(
    name="X-Request-Id",
    param_in="header",
    required=False,
    description="Your id for this request, 1-128 of `A-Z a-z 0-9 . _ ~ -`; anything else is replaced by the gate's.",
    schema=Schema(type=OpenAPIType.STRING),
)
_TRACEPARENT_PARAM = Parameter(
    name="traceparent",
    param_in="header",
    required=False,
    description=(
        "W3C Trace Context. A valid one is kept with the order: in its Kafka message's `traceparent` header "
        "and as the trace id of its row (`flashgate order show`). An invalid one is ignored, as W3C says."
    ),
    schema=Schema(type=OpenAPIType.STRING),
)
CREATE_ORDER = (
    "Admits the order, or says why not. The first answer for an Idempotency-Key is stored (except 429 and "
    "5xx, which consumed nothing): a retry with the same key and body gets the same status and order id with "
    "`Idempotent-Replayed: true`; the same key with another body gets 422. Problem `type` is "
    "FLASHGATE_GATE_PROBLEM_BASE_URL#code (docs/problems.md); `instance` is the request id."
)


def create_order_operation(route_problems: Iterable[tuple[int, str]]) -> type[Operation]:
    idempotency_key = Parameter(
        name="Idempotency-Key",
        param_in="header",
        required=True,
        description="Your key for this order (scoped per buyer and SKU): retries with it never order twice.",
        schema=Schema(type=OpenAPIType.STRING, pattern=IDEMPOTENCY_KEY.pattern),
    )
    body = RequestBody(
        content={"application/json": OpenAPIMediaType(schema=_ref(OrderBody))},
        required=True,
        description="The order; unknown fields are refused (400 `invalid_fields`).",
    )
    admission = [(status, code) for status, code, _ in PROBLEMS.values()]
    ok = {202: _json_response("Admitted: the order will be persisted exactly once.", OrderAnswer, 202)}
    return documented(
        responses(ok, [*route_problems, *admission]),
        parameters=[idempotency_key, _REQUEST_ID_PARAM, _TRACEPARENT_PARAM],
        request_body=body,
    )


def order_route(handler: OrderHandler) -> HTTPRouteHandler:
    """POST /v1/orders as Litestar sees it: the documented contract, answered by `handler` itself.

    The route takes no `data` and no parameters, so Litestar reads and checks nothing; returning
    the handler makes Litestar run it as an ASGI app on the untouched request. The servers reach
    `handler` before Litestar (gate/app.py `GateApp`); Litestar routes here other spellings of the
    path (`/v1/orders/`).
    """

    @post(
        "/v1/orders",
        status_code=202,
        operation_class=create_order_operation(ROUTE_PROBLEMS),
        security=BUYER,
        summary="Place an order",
        description=CREATE_ORDER,
    )
    async def create_order() -> ASGIApp:
        return cast("ASGIApp", handler)

    return create_order


STATUS_PROBLEMS = (
    (Unauthorized.status, Unauthorized.code),
    (NotFound.status, NotFound.code),
    (RedisUnavailable.status, RedisUnavailable.code),
    (500, "internal"),
)
ORDER_STATUS = documented(
    responses({200: _json_response("The buyer's own order.", OrderStatus, 200)}, STATUS_PROBLEMS),
    parameters=[_REQUEST_ID_PARAM],
)
LIVE = documented({"200": _json_response("The process serves.", Health, 200)}, public=True)
READY = documented(
    responses(
        {200: _json_response("This process can admit (Kafka down is degraded, not unready).", Readiness, 200)},
        [(503, "not_ready")],
    ),
    public=True,
)
_TEXT = Schema(type=OpenAPIType.STRING)
METRICS = documented(
    {
        "200": OpenAPIResponse(
            description="Prometheus metrics of every gate process.",
            headers=_headers(200),
            content={CONTENT_TYPE_LATEST.split(";")[0]: OpenAPIMediaType(schema=_TEXT)},
        )
    },
    public=True,
)
PROBLEM_PAGE = documented(
    {
        "200": OpenAPIResponse(
            description="docs/problems.md: every problem code, an anchor each (the default problem `type` base).",
            headers=_headers(200),
            content={"text/markdown": OpenAPIMediaType(schema=_TEXT)},
        )
    },
    public=True,
)
