"""The OpenAPI description held to the code that answers: the fast order route, driven into every
answer it can give, must give exactly the documented (status, code) pairs, with documented bodies
and headers; every documented code has its anchor in docs/problems.md.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from msgspec.structs import replace

from gate import openapi
from gate.admission import Admission, AdmitRequest, Code
from gate.answers import PROBLEMS, Answer, order_answer
from gate.app import HTTP_CODES, create_app
from gate.auth import Identity
from gate.errors import RedisUnavailable
from gate.fastpath import IDEMPOTENCY_KEY, OrderBody, order_handler
from gate.metrics import GateMetrics
from gate.settings import AuthSettings, GateSettings
from gate.wire import Wire

PROBLEM_PAGE = Path(__file__).resolve().parents[2] / "docs" / "problems.md"
JSON = "application/json"
PROBLEM = "application/problem+json"


def settings(auth: AuthSettings) -> GateSettings:
    return GateSettings(redis_url="redis://127.0.0.1:1", kafka_bootstrap="127.0.0.1:1", auth=auth, body_timeout_ms=100)


AUTH_OFF = AuthSettings(disabled=True)


def document(auth: AuthSettings = AUTH_OFF) -> dict[str, Any]:
    doc: dict[str, Any] = create_app(settings(auth)).litestar.openapi_schema.to_schema()
    return doc


def documented_answers(operation: dict[str, Any]) -> set[tuple[int, str]]:
    """(status, code) of every documented answer: the problem `code` enum, or the 2xx `status` enum."""
    pairs = set()
    for status, response in operation["responses"].items():
        for media, content in response.get("content", {}).items():
            schema = content["schema"]
            if media == PROBLEM:
                pairs |= {(int(status), code) for code in schema["allOf"][1]["properties"]["code"]["enum"]}
            elif media == JSON and "status" in schema.get("properties", {}):
                pairs |= {(int(status), s) for s in schema["properties"]["status"]["enum"]}
            else:
                pairs.add((int(status), media))
    return pairs


class FakeDesk:
    """The order desk's answers by SKU: `accepted`, `queued`, an admission code's name, `redis`, `crash`."""

    async def place(self, req: AdmitRequest) -> Answer:
        oid = str(uuid.uuid4())
        if req.sku in ("accepted", "queued"):
            return order_answer(Admission(Code.ACCEPTED, oid), req, delivered=req.sku == "accepted")
        if req.sku == "redis":
            raise RedisUnavailable("breaker open")
        if req.sku == "crash":
            raise RuntimeError("a bug")
        answer = order_answer(Admission(Code[req.sku.upper()], oid, wait_ms=1500), req, now_ms=1_800_000_000_000)
        if answer.status == 429:  # as OrderDesk adds them (gate/ratelimit.py)
            answer = replace(answer, headers=((b"ratelimit-policy", b'"buyer";q=1;w=5'), (b"ratelimit", b"x")))
        return answer


Sent = tuple[int, dict[bytes, bytes], bytes]


def drive(gate: Any) -> Callable[..., Awaitable[Sent]]:
    handler = order_handler(gate)

    async def post(body: bytes, headers: dict[str, str], *, hang: bool = False) -> Sent:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/orders",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if hang:
                await asyncio.sleep(10)
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        await handler(scope, receive, send)
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    return post


async def every_answer_of_the_order_route() -> list[Sent]:
    auth = AuthSettings(disabled=True)
    s = settings(auth)
    gate = SimpleNamespace(
        settings=s,
        metrics=GateMetrics(),
        desk=FakeDesk(),
        identity=Identity(auth),
        wire=Wire(s.problem_base_url),
        inflight=0,
        tracing=None,
    )
    post = drive(gate)
    ok = {"X-User-Id": "ann", "Idempotency-Key": "k"}
    skus = ["accepted", "queued", "redis", "crash", *(c.name.lower() for c in PROBLEMS)]
    answers = [await post(b'{"sku": "%s", "qty": 1}' % sku.encode(), ok) for sku in skus]
    answers += [
        await post(b"{", ok),
        await post(b'{"sku": "a"}', ok),
        await post(b'{"sku": "a", "qty": 1}', {"X-User-Id": "ann"}),
        await post(b'{"sku": "a", "qty": 1}', {**ok, "Idempotency-Key": "a b"}),
        await post(b'{"sku": "a", "qty": 1}', {"Idempotency-Key": "k"}),
        await post(b"{}", {**ok, "Content-Length": str(s.body_limit_bytes + 1)}),
        await post(b"{}", ok, hang=True),
    ]
    gate.inflight = s.max_inflight
    answers.append(await post(b'{"sku": "accepted", "qty": 1}', ok))
    return answers


def test_the_order_route_answers_exactly_what_is_documented() -> None:
    operation = document()["paths"]["/v1/orders"]["post"]
    answers = asyncio.run(every_answer_of_the_order_route())
    seen: set[tuple[int, str]] = set()
    for status, headers, body in answers:
        doc = msgspec.json.decode(body)
        seen.add((status, doc["code"] if status >= 400 else doc["status"]))
        response = operation["responses"][str(status)]
        media = headers[b"content-type"].decode()
        assert list(response["content"]) == [media]
        for name, header in response["headers"].items():
            assert not header["required"] or name.lower().encode() in headers, (status, name)
        # the body is what the schema's Struct says (the document's schemas are msgspec's of these)
        model = openapi.Problem if status >= 400 else openapi.OrderAnswer
        msgspec.convert(doc, model, strict=True)
    assert seen == documented_answers(operation)


def test_the_order_body_and_key_are_the_handlers_own() -> None:
    operation = document()["paths"]["/v1/orders"]["post"]
    body = operation["requestBody"]["content"][JSON]["schema"]
    assert body == msgspec.json.schema(OrderBody)["$defs"]["OrderBody"]
    assert body["additionalProperties"] is False
    [key] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert (key["in"], key["required"], key["schema"]["pattern"]) == ("header", True, IDEMPOTENCY_KEY.pattern)
    [trace] = [p for p in operation["parameters"] if p["name"] == "traceparent"]
    assert (trace["in"], trace["required"]) == ("header", False)


def test_every_answer_of_every_operation_documents_x_request_id() -> None:
    paths = document()["paths"]
    routes = {"/v1/orders", "/v1/orders/{order_id}", "/health/live", "/health/ready", "/metrics", "/problems"}
    assert set(paths) == routes
    for path, item in paths.items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                assert response["headers"]["X-Request-Id"]["required"] is True, (path, method, status)


@pytest.mark.parametrize(
    ("auth", "scheme"),
    [
        (AuthSettings(hs256_secret="s" * 32), {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
        (AuthSettings(disabled=True), {"type": "apiKey", "name": "X-User-Id", "in": "header"}),
    ],
)
def test_the_buyer_credential_is_this_gates_auth_mode(auth: AuthSettings, scheme: dict[str, str]) -> None:
    doc = document(auth)
    buyer = doc["components"]["securitySchemes"]["buyer"]
    assert {k: v for k, v in buyer.items() if k != "description"} == scheme
    assert doc["paths"]["/v1/orders"]["post"]["security"] == [{"buyer": []}]
    assert doc["paths"]["/v1/orders/{order_id}"]["get"]["security"] == [{"buyer": []}]
    assert doc["paths"]["/health/ready"]["get"]["security"] == []


def test_every_problem_code_has_its_anchor_in_docs_problems_md() -> None:
    codes = {code for _, code, _ in PROBLEMS.values()} | set(HTTP_CODES.values()) | {"http_error"}
    for item in document()["paths"].values():
        for operation in item.values():
            codes |= {code for status, code in documented_answers(operation) if status >= 400}
    anchors = set(re.findall(r'<a id="([a-z_]+)"></a>', PROBLEM_PAGE.read_text()))
    assert anchors == codes
