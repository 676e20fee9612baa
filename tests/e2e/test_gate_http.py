"""The HTTP contract of the gate, in-process over real Redis and Kafka: every status code."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flashgate import names
from gate.settings import AuthSettings
from tests.support.gatekit import (
    consume_all,
    create_topic,
    gate_settings,
    open_sale,
    order_headers,
    redis_client,
    running_gate,
    token,
)
from tests.support.poll import until
from tests.support.sales import Sale
from tests.support.stackctl import StackHandle

PROBLEM = "application/problem+json"


async def stock(stack: StackHandle, sku: str) -> int:
    r = redis_client(stack)
    try:
        return int(await r.get(names.stock_key(sku)) or "0")
    finally:
        await r.aclose()


async def test_accepted_order_reaches_kafka_and_leaves_the_outbox(stack: StackHandle, name: str) -> None:
    create_topic(stack, name)
    await open_sale(stack, Sale(sku=name, units=3))
    # A generous budget: on a fresh broker the first idempotent producer waits for its id.
    async with running_gate(gate_settings(stack, name, delivery_budget_ms=9000)) as (client, gate):
        res = await client.post("/v1/orders", json={"sku": name, "qty": 2}, headers=order_headers("alice", "k1"))
        assert res.status_code == 202, res.text
        body = res.json()
        assert body == {"order_id": body["order_id"], "sku": name, "qty": 2, "status": "accepted"}
        assert "idempotent-replayed" not in res.headers

        again = await client.post("/v1/orders", json={"sku": name, "qty": 2}, headers=order_headers("alice", "k1"))
        assert (again.status_code, again.json()) == (202, body)
        assert again.headers["idempotent-replayed"] == "true"

        status = await client.get(f"/v1/orders/{body['order_id']}", headers=order_headers("alice", "-"))
        assert status.status_code == 200
        assert status.json() == body
        other = await client.get(f"/v1/orders/{body['order_id']}", headers=order_headers("bob", "-"))
        assert (other.status_code, other.headers["content-type"]) == (404, PROBLEM)
        bogus = await client.get("/v1/orders/not-a-uuid", headers=order_headers("alice", "-"))
        assert bogus.status_code == 404

        r = redis_client(stack)

        async def outbox_empty() -> bool:
            return await r.xlen(names.outbox_key(name)) == 0

        await until(outbox_empty, what="outbox acked")
        await r.aclose()
        assert gate.acker.acked == 1
    [event] = consume_all(stack, name, expect=1)
    assert (str(event.order_id), event.sku, event.user_id, event.qty, event.idempotency_key) == (
        body["order_id"],
        name,
        "alice",
        2,
        "k1",
    )
    assert abs(event.accepted_at.timestamp() - time.time()) < 30


STAGES = {"queued": 0, "accepted": 1}


async def test_concurrent_retries_never_report_an_earlier_stage_than_an_answer_given(
    stack: StackHandle, name: str
) -> None:
    """50 retries of one key race the first request, then 50 more come after; stages only move forward.

    Kafka is slowed (linger 300 ms), so the racing retries find the entry still in the outbox and
    say `queued`; the first answer says `accepted` only once the entry is gone. No retry sent after
    some answer was received may report an earlier stage than that answer.
    """
    await open_sale(stack, Sale(sku=name, units=5))
    create_topic(stack, name)
    answers: list[tuple[float, float, str, str]] = []  # sent, received, status, order id
    async with running_gate(gate_settings(stack, name, linger_ms=300, delivery_budget_ms=5000)) as (client, _):

        async def post() -> None:
            sent = time.monotonic()
            res = await client.post("/v1/orders", json={"sku": name, "qty": 1}, headers=order_headers("ann", "k"))
            assert res.status_code == 202, res.text
            answers.append((sent, time.monotonic(), res.json()["status"], res.json()["order_id"]))

        await asyncio.gather(post(), *(post() for _ in range(50)))
        racing = list(answers)
        await asyncio.gather(*(post() for _ in range(50)))

    assert len({order_id for *_, order_id in answers}) == 1
    assert "queued" in {status for _, _, status, _ in racing}  # the window was there to race
    assert {status for _, _, status, _ in answers[len(racing) :]} == {"accepted"}
    for sent, _, status, _ in answers:
        given = [STAGES[s] for _, received, s, _ in answers if received < sent]
        assert STAGES[status] >= max(given, default=0), (status, sorted(answers))
    assert await stock(stack, name) == 4


async def test_idempotency_keys_are_scoped_per_sku(stack: StackHandle, name: str) -> None:
    """One user, one key, two SKUs: two orders (I3 is per (user, SKU, key)); each replays its own."""
    skus = [f"{name}-a", f"{name}-b"]
    for sku in skus:
        await open_sale(stack, Sale(sku=sku, units=3))
    create_topic(stack, name)
    async with running_gate(gate_settings(stack, name)) as (client, _):
        first = [
            await client.post("/v1/orders", json={"sku": sku, "qty": 1}, headers=order_headers("ann", "k"))
            for sku in skus
        ]
        again = [
            await client.post("/v1/orders", json={"sku": sku, "qty": 1}, headers=order_headers("ann", "k"))
            for sku in skus
        ]
    assert [r.status_code for r in first + again] == [202] * 4
    ids = [r.json()["order_id"] for r in first]
    assert ids[0] != ids[1]
    assert [r.json()["order_id"] for r in again] == ids
    assert [r.headers.get("idempotent-replayed") for r in first + again] == [None, None, "true", "true"]
    assert sorted(str(e.order_id) for e in consume_all(stack, name, expect=2)) == sorted(ids)
    assert [await stock(stack, sku) for sku in skus] == [2, 2]


async def test_business_refusals(stack: StackHandle, name: str) -> None:
    now_ms = int(time.time() * 1000)
    await open_sale(stack, Sale(sku=f"{name}-cap", units=10, per_user_limit=1))
    await open_sale(stack, Sale(sku=f"{name}-one", units=1))
    await open_sale(stack, Sale(sku=f"{name}-soon", units=1, starts_at_ms=now_ms + 60_000))
    await open_sale(stack, Sale(sku=f"{name}-over", units=1, ends_at_ms=now_ms - 1))
    await open_sale(stack, Sale(sku=f"{name}-rl", units=10, rate_per_s=0.2, burst=1))

    async with running_gate(gate_settings(stack, name, delivery_budget_ms=9000)) as (client, _):

        async def order(sku: str, key: str, qty: int = 1, user: str = "bob") -> tuple[int, str, dict[str, str]]:
            res = await client.post("/v1/orders", json={"sku": sku, "qty": qty}, headers=order_headers(user, key))
            if res.status_code == 202:
                return 202, res.json()["status"], dict(res.headers)
            assert res.headers["content-type"] == PROBLEM
            doc = res.json()
            assert doc["type"] == f"/problems#{doc['code']}"
            assert doc["status"] == res.status_code
            assert doc["instance"] == res.headers["x-request-id"]
            return res.status_code, doc["code"], dict(res.headers)

        capped = await order(f"{name}-cap", "a")
        assert capped[:2] == (202, "accepted")
        assert "ratelimit" not in capped[2]  # a sale without a rate limit: no RateLimit fields on its 202s
        assert (await order(f"{name}-cap", "b"))[:2] == (409, "user_limit")
        assert (await order(f"{name}-cap", "a", qty=3))[:2] == (422, "idempotency_key_reused")
        assert (await order(f"{name}-one", "a", qty=2))[:2] == (409, "sold_out")
        assert (await order(f"{name}-one", "b"))[0] == 202
        assert (await order(f"{name}-one", "c"))[:2] == (409, "sold_out")
        # Sold-out cache is hot now; a retry of the admitted order still gets its own answer.
        replay = await order(f"{name}-one", "b")
        assert (replay[0], replay[2]["idempotent-replayed"]) == (202, "true")
        before_s = time.time()
        soon_order = {"sku": f"{name}-soon", "qty": 1}
        soon = await client.post("/v1/orders", json=soon_order, headers=order_headers("bob", "a"))
        assert (soon.status_code, soon.json()["code"]) == (409, "sale_not_started")
        opens_s = datetime.fromisoformat(soon.json()["starts_at"]).timestamp()
        assert abs(opens_s - now_ms / 1000 - 60) < 2  # the sale's starts_at_ms, read on the gate's clock
        assert 55 <= int(soon.headers["retry-after"]) <= 61
        assert 55_000 <= soon.json()["starts_in_ms"] <= (now_ms + 60_000) - before_s * 1000 + 1000
        assert (await order(f"{name}-over", "a"))[:2] == (409, "sale_ended")
        assert (await order(f"{name}-none", "a"))[:2] == (404, "unknown_sku")
        admitted = await order(f"{name}-rl", "a")
        assert admitted[0] == 202
        # A 202 of a rate-limited sale says what is left: burst 1 used, back in one interval (5 s).
        assert (admitted[2]["ratelimit"], admitted[2]["ratelimit-policy"]) == ('"buyer";r=0;t=5', '"buyer";q=1;w=5')
        limited = await order(f"{name}-rl", "b")
        assert limited[:2] == (429, "rate_limited")
        assert 1 <= int(limited[2]["retry-after"]) <= 5
        # IETF RateLimit fields: rate 0.2/s, burst 1 is one order per 5 s; none left until Retry-After.
        assert limited[2]["ratelimit-policy"] == '"buyer";q=1;w=5'
        assert limited[2]["ratelimit"] == f'"buyer";r=0;t={limited[2]["retry-after"]}'
        assert await stock(stack, f"{name}-rl") == 9  # the limited request took nothing
        # 429 is not stored: the same key is judged afresh (and still limited).
        assert (await order(f"{name}-rl", "b"))[:2] == (429, "rate_limited")


async def test_sold_out_answers_non_buyers_without_redis_and_buyers_from_redis(stack: StackHandle, name: str) -> None:
    await open_sale(stack, Sale(sku=name, units=2))
    async with running_gate(gate_settings(stack, name, delivery_budget_ms=9000, soldout_cache_ms=60_000)) as (
        client,
        gate,
    ):

        async def order(user: str, key: str, qty: int = 1) -> tuple[int, str, bool]:
            res = await client.post("/v1/orders", json={"sku": name, "qty": qty}, headers=order_headers(user, key))
            code = res.json()["status"] if res.status_code == 202 else res.json()["code"]
            return res.status_code, code, res.headers.get("idempotent-replayed") == "true"

        assert (await order("ann", "a"))[:2] == (202, "accepted")
        assert (await order("bob", "b"))[:2] == (202, "accepted")  # took the last unit
        assert await order("cat", "c") == (409, "sold_out", False)  # Redis said so, and stored it

        async def buyers_known() -> bool:
            return gate.soldout.answers_sold_out(name, "dan", time.monotonic())

        await until(buyers_known, what="the buyer set is fetched")
        hits = gate.metrics.events["soldout_cache_hits"]
        # Users who never bought: answered here. A repeated refused key is answered afresh (no
        # Idempotent-Replayed), and a key reused with another body gets sold_out, not 422.
        assert await order("cat", "c") == (409, "sold_out", False)
        assert await order("cat", "c", qty=2) == (409, "sold_out", False)
        assert await order("dan", "d") == (409, "sold_out", False)
        assert gate.metrics.events["soldout_cache_hits"] == hits + 3
        # Buyers go to Redis: their retries get their own stored answers.
        assert await order("bob", "b") == (202, "accepted", True)
        assert await order("bob", "b", qty=2) == (422, "idempotency_key_reused", False)
        assert await order("bob", "other") == (409, "sold_out", False)  # a buyer's new key: judged by Redis
        assert gate.metrics.events["soldout_cache_hits"] == hits + 3
        assert await stock(stack, name) == 0


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "malformed_json"),
        (b'{"sku": "\xff\xfe\xfd", "qty": 1}', {}, 400, "malformed_json"),  # invalid UTF-8 in a string
        (b'{"sku": "x", "qty": 0}', {}, 400, "invalid_fields"),
        (b'{"sku": "x"}', {}, 400, "invalid_fields"),
        (b'{"sku": "a{b}", "qty": 1}', {}, 400, "invalid_fields"),
        (b'{"sku": "x", "qty": 1, "price": 1}', {}, 400, "invalid_fields"),
        (b'{"sku": "x", "qty": 1}', {"Idempotency-Key": ""}, 400, "bad_idempotency_key"),
        (b'{"sku": "x", "qty": 1}', {"Idempotency-Key": "a b"}, 400, "bad_idempotency_key"),
        (b'{"sku": "x", "qty": 1}', {"Idempotency-Key": "k" * 129}, 400, "bad_idempotency_key"),
        (b'{"sku": "x", "qty": 1}', {"Idempotency-Key": None}, 400, "missing_idempotency_key"),
        (b'{"sku": "x", "qty": 1, "pad": "' + b"x" * 5000 + b'"}', {}, 413, "body_too_large"),
        (b'{"sku": "x", "qty": 1}', {"Authorization": None}, 401, "unauthorized"),
        (b'{"sku": "x", "qty": 1}', {"Authorization": "Bearer nonsense"}, 401, "unauthorized"),
        (b'{"sku": "x", "qty": 1}', {"Authorization": "Basic dTpw"}, 401, "unauthorized"),
    ],
)
async def test_malformed_requests(
    stack: StackHandle, name: str, body: bytes, headers: dict[str, str | None], status: int, code: str
) -> None:
    async with running_gate(gate_settings(stack, name)) as (client, _):
        sent = {k: v for k, v in {**order_headers("carol", "k1"), **headers}.items() if v is not None}
        res = await client.post("/v1/orders", content=body, headers={**sent, "Content-Type": "application/json"})
        assert (res.status_code, res.headers["content-type"], res.json()["code"]) == (status, PROBLEM, code)
        if status == 401:
            assert res.headers["www-authenticate"] == "Bearer"


async def test_tokens_wrong_secret_expired_and_x_user_id_ignored(stack: StackHandle, name: str) -> None:
    await open_sale(stack, Sale(sku=name, units=5))
    async with running_gate(gate_settings(stack, name)) as (client, _):
        body = {"sku": name, "qty": 1}
        for bad in (token("u", secret="another-secret-that-is-long-enough-xx"), token("u", ttl_s=-60)):
            res = await client.post(
                "/v1/orders", json=body, headers={"Authorization": f"Bearer {bad}", "Idempotency-Key": "k"}
            )
            assert (res.status_code, res.json()["code"]) == (401, "unauthorized")
        no_sub = jwt.encode(
            {"exp": int(time.time()) + 60}, "test-secret-that-is-long-enough-for-hs256", algorithm="HS256"
        )
        res = await client.post(
            "/v1/orders", json=body, headers={"Authorization": f"Bearer {no_sub}", "Idempotency-Key": "k"}
        )
        assert res.status_code == 401
        res = await client.post("/v1/orders", json=body, headers={"X-User-Id": "mallory", "Idempotency-Key": "k"})
        assert res.status_code == 401
    assert await stock(stack, name) == 5


async def test_rs256_public_key(stack: StackHandle, name: str) -> None:
    await open_sale(stack, Sale(sku=name, units=5))
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = AuthSettings(rs256_public_key=public_pem)
    async with running_gate(gate_settings(stack, name, auth=auth)) as (client, _):
        good = jwt.encode({"sub": "dave", "exp": int(time.time()) + 60}, private, algorithm="RS256")
        res = await client.post(
            "/v1/orders",
            json={"sku": name, "qty": 1},
            headers={"Authorization": f"Bearer {good}", "Idempotency-Key": "k"},
        )
        assert res.status_code == 202
        hs = token("dave")  # an HS256 token must not pass an RS256 gate
        res = await client.post(
            "/v1/orders",
            json={"sku": name, "qty": 1},
            headers={"Authorization": f"Bearer {hs}", "Idempotency-Key": "k"},
        )
        assert res.status_code == 401


async def test_auth_off_takes_x_user_id(stack: StackHandle, name: str) -> None:
    await open_sale(stack, Sale(sku=name, units=5, per_user_limit=1))
    async with running_gate(gate_settings(stack, name, auth=AuthSettings(disabled=True))) as (client, _):
        body = {"sku": name, "qty": 1}
        assert (
            await client.post("/v1/orders", json=body, headers={"X-User-Id": "erin", "Idempotency-Key": "a"})
        ).status_code == 202
        res = await client.post("/v1/orders", json=body, headers={"X-User-Id": "erin", "Idempotency-Key": "b"})
        assert res.json()["code"] == "user_limit"
        res = await client.post("/v1/orders", json=body, headers={"Idempotency-Key": "c"})
        assert res.status_code == 401


async def test_inflight_bound_sheds_with_503_and_takes_nothing(stack: StackHandle, name: str) -> None:
    await open_sale(stack, Sale(sku=name, units=100))
    async with running_gate(gate_settings(stack, name, max_inflight=1)) as (client, _):
        results = await asyncio.gather(
            *(
                client.post("/v1/orders", json={"sku": name, "qty": 1}, headers=order_headers(f"u{i}", "k"))
                for i in range(20)
            )
        )
    shed = [r for r in results if r.status_code == 503]
    assert {r.status_code for r in results} == {202, 503}
    assert all(r.json()["code"] == "overloaded" and 1 <= int(r.headers["retry-after"]) <= 3 for r in shed)
    assert await stock(stack, name) == 100 - (len(results) - len(shed))


async def test_health_metrics_and_unknown_routes(stack: StackHandle, name: str) -> None:
    async with running_gate(gate_settings(stack, name)) as (client, _):
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        await client.post("/v1/orders", json={"sku": name, "qty": 1}, headers=order_headers("x", "k"))
        metrics = (await client.get("/metrics")).text
        assert 'flashgate_gate_requests_total{outcome="unknown_sku",status="404"} 1.0' in metrics
        missing = await client.get("/nope")
        assert (missing.status_code, missing.headers["content-type"], missing.json()["code"]) == (
            404,
            PROBLEM,
            "not_found",
        )
        wrong = await client.get("/v1/orders")
        assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")


async def test_request_ids_problem_page_and_schema(stack: StackHandle, name: str) -> None:
    """X-Request-Id on every answer (sent one kept, else made), once; /problems and /schema served."""
    async with running_gate(gate_settings(stack, name)) as (client, _):
        body = {"sku": name, "qty": 1}
        mine = await client.post("/v1/orders", json=body, headers={**order_headers("x", "k"), "X-Request-Id": "r-1"})
        assert (mine.status_code, mine.headers["x-request-id"], mine.json()["instance"]) == (404, "r-1", "r-1")
        forged = await client.post("/v1/orders", json=body, headers={**order_headers("x", "k"), "X-Request-Id": "a b"})
        assert forged.headers["x-request-id"] not in ("", "a b")
        assert forged.json()["instance"] == forged.headers["x-request-id"]
        answers = [
            mine,
            forged,
            await client.get("/health/live", headers={"X-Request-Id": "r-2"}),
            await client.get("/nope"),
            await client.get("/v1/orders"),
            await client.get(f"/v1/orders/{name}", headers=order_headers("x", "-")),
            await client.get("/schema/openapi.json"),
        ]
        assert [len(r.headers.get_list("x-request-id")) for r in answers] == [1] * len(answers)
        assert answers[2].headers["x-request-id"] == "r-2"
        ids = [r.headers["x-request-id"] for r in answers[3:]]
        assert len(set(ids)) == len(ids)
        for problem in answers[3:6]:
            assert problem.json()["instance"] == problem.headers["x-request-id"]
        assert answers[4].headers["allow"] == "POST"  # 405 on the fast route says what is allowed

        page = await client.get("/problems")
        assert (page.status_code, page.headers["content-type"]) == (200, "text/markdown; charset=utf-8")
        assert '<a id="sold_out"></a>' in page.text
        doc = answers[6].json()
        assert doc["openapi"] == "3.1.0"
        assert "202" in doc["paths"]["/v1/orders"]["post"]["responses"]
        assert (await client.get("/schema")).status_code == 200


async def test_other_spellings_of_the_order_path_reach_the_same_handler(stack: StackHandle, name: str) -> None:
    """`/v1/orders/` goes through Litestar's documented route, which hands the request to the fast handler."""
    await open_sale(stack, Sale(sku=name, units=3))
    create_topic(stack, name)
    async with running_gate(gate_settings(stack, name, delivery_budget_ms=9000)) as (client, _):
        body = {"sku": name, "qty": 1}
        first = await client.post("/v1/orders/", json=body, headers=order_headers("ann", "k"))
        again = await client.post("/v1/orders", json=body, headers=order_headers("ann", "k"))
        bad = await client.post("/v1/orders/", content=b"{", headers=order_headers("ann", "k2"))
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (202, first.json(), "true")
    assert (bad.status_code, bad.json()["code"]) == (400, "malformed_json")
    for res in (first, bad):
        assert len(res.headers.get_list("x-request-id")) == 1
    assert await stock(stack, name) == 2
