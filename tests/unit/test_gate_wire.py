"""Answers on the wire (gate/wire.py), RateLimit fields (gate/ratelimit.py), `sale_not_started` answers."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime
from typing import Any

import pytest

from flashgate.settings import ConfigError
from gate.admission import Admission, AdmitRequest, Code
from gate.answers import Answer, error_answer, order_answer, problem
from gate.errors import Overloaded, RedisUnavailable, Unauthorized
from gate.ratelimit import POLICY_TTL_S, RatePolicies, limit_field, policy_field
from gate.settings import GateSettings
from gate.wire import REQUEST_ID_PATTERN, UNAVAILABLE_RETRY_AFTER_S, Wire
from tests.support.fakes import Command, FakeRoundTrips

REQ = AdmitRequest("sku-1", "ann", "k", 2)


def test_request_id_kept_when_well_formed_else_generated() -> None:
    wire = Wire("/problems")
    assert wire.request_id("abc-123_X.~") == b"abc-123_X.~"
    assert wire.request_id("k" * 128) == b"k" * 128
    made = [wire.request_id(bad) for bad in (None, "", "a b", "k" * 129, "é", 'a"b', "a/b", "a:b")]
    assert len(set(made)) == len(made)
    assert all(REQUEST_ID_PATTERN.match(rid.decode()) for rid in made)
    assert Wire("/problems").request_id(None) != made[0]  # another process: another prefix


def test_scope_request_id_is_decided_once_per_request() -> None:
    wire = Wire("/problems")
    scope: dict[str, Any] = {"headers": [(b"x-request-id", b"from-client")]}
    assert wire.scope_request_id(scope) == b"from-client"
    plain: dict[str, Any] = {"headers": []}
    first = wire.scope_request_id(plain)
    assert wire.scope_request_id(plain) == first


def test_problem_type_and_instance_are_added_on_the_wire() -> None:
    wire = Wire("https://docs.example/flashgate/problems.html")
    answer = error_answer(Unauthorized("a bearer token is required"))
    doc = json.loads(wire.body(answer, b"rid-1"))
    assert doc == {
        "type": "https://docs.example/flashgate/problems.html#unauthorized",
        "title": "Missing or invalid credentials",
        "status": 401,
        "code": "unauthorized",
        "detail": "a bearer token is required",
        "instance": "rid-1",
    }
    assert dict(wire.headers(answer, b"rid-1")) == {b"x-request-id": b"rid-1", b"www-authenticate": b"Bearer"}
    accepted = Answer(202, {"order_id": "o", "sku": "s", "qty": 1, "status": "accepted"}, "accepted", replayed=True)
    assert json.loads(wire.body(accepted, b"r")) == accepted.body  # no problem members on a 202
    headers, body = wire.raw(accepted, b"r")
    assert headers == [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"x-request-id", b"r"),
        (b"idempotent-replayed", b"true"),
    ]


def test_retry_after_on_503_is_jittered_within_its_bounds() -> None:
    wire = Wire("/problems", rng=random.Random(7))
    low, high = UNAVAILABLE_RETRY_AFTER_S
    for error in (RedisUnavailable(), Overloaded()):
        drawn = [int(dict(wire.headers(error_answer(error), b"r"))[b"retry-after"]) for _ in range(200)]
        assert set(drawn) == set(range(low, high + 1)), drawn  # every value of the range, none outside
    not_ready = Answer(503, problem(503, "not_ready", "Not ready"), "not_ready", retry_after_s=1)
    assert low <= int(dict(wire.headers(not_ready, b"r"))[b"retry-after"]) <= high


def test_retry_after_elsewhere_is_exact_and_extra_headers_pass_through() -> None:
    wire = Wire("/problems")
    limited = order_answer(Admission(Code.RATE_LIMITED, wait_ms=2001), REQ)
    limited = Answer(limited.status, limited.body, limited.code, limited.retry_after_s, headers=((b"ratelimit", b"x"),))
    assert wire.headers(limited, b"r") == [(b"x-request-id", b"r"), (b"retry-after", b"3"), (b"ratelimit", b"x")]


def test_sale_not_started_says_when_the_sale_opens() -> None:
    adm = Admission(Code.NOT_STARTED, wait_ms=90_500)
    answer = order_answer(adm, REQ, now_ms=1_800_000_000_000)
    assert (answer.status, answer.code, answer.retry_after_s) == (409, "sale_not_started", 91)
    assert answer.body["starts_in_ms"] == 90_500
    assert datetime.fromisoformat(answer.body["starts_at"]).timestamp() == 1_800_000_090.5
    assert answer.body["starts_at"].endswith("+00:00")
    without_clock = order_answer(adm, REQ)
    assert "starts_at" not in without_clock.body
    assert without_clock.body["starts_in_ms"] == 90_500


@pytest.mark.parametrize(
    ("rate_per_s", "burst", "field"),
    [
        (0.2, 1, b'"buyer";q=1;w=5'),  # one order per 5 s
        (10.0, 5, b'"buyer";q=10;w=1'),  # the window cannot be under 1 s: 10 per second
        (2.0, 3, b'"buyer";q=4;w=2'),  # ⌈3/2⌉ = 2 s, 2·2 = 4 orders
        (1.0, 0, b'"buyer";q=1;w=1'),  # burst 0 is read as 1, as admit.lua does
        (0.0, 5, None),  # no rate limit: no policy
    ],
)
def test_policy_field_states_the_gcra_as_a_quota(rate_per_s: float, burst: int, field: bytes | None) -> None:
    assert policy_field(rate_per_s, burst) == field


def test_limit_field_rounds_the_wait_up_to_whole_seconds() -> None:
    assert [limit_field(ms) for ms in (1, 1000, 1001, 0)] == [
        b'"buyer";r=0;t=1',
        b'"buyer";r=0;t=1',
        b'"buyer";r=0;t=2',
        b'"buyer";r=0;t=1',
    ]


def sale_hashes(sales: dict[str, list[str | None]], fail: list[Exception]) -> FakeRoundTrips:
    """RoundTrips answering HMGET of `sale:{sku}` from `sales`; while `fail` holds an error, raising it."""

    def answer(command: Command) -> Any:
        if fail:
            raise fail[0]
        return sales.get(command[1], [None, None])

    return FakeRoundTrips(answer)


async def test_rate_policies_read_once_per_sku_and_ttl() -> None:
    now = [100.0]
    batcher = sale_hashes({"sale:{a}": ["0.2", "1"], "sale:{free}": ["0.0", "1"]}, [])
    policies = RatePolicies(batcher, clock=lambda: now[0])
    many = await asyncio.gather(*(policies.headers("a", 4200) for _ in range(50)))
    assert len(batcher.commands) == 1  # fifty 429s of one tick: one read
    assert set(many) == {((b"ratelimit-policy", b'"buyer";q=1;w=5'), (b"ratelimit", b'"buyer";r=0;t=5'))}
    await policies.headers("a", 10)
    assert len(batcher.commands) == 1
    now[0] += POLICY_TTL_S
    await policies.headers("a", 10)
    assert len(batcher.commands) == 2  # read again once the cached policy is stale
    assert await policies.headers("free", 1000) == ((b"ratelimit", b'"buyer";r=0;t=1'),)


@pytest.mark.parametrize("error", [RedisUnavailable(), ValueError("bad float")])
async def test_rate_policies_leave_the_policy_out_when_it_cannot_be_read(error: Exception) -> None:
    fail = [error]
    policies = RatePolicies(sale_hashes({"sale:{a}": ["0.2", "1"]}, fail))
    assert await policies.headers("a", 1500) == ((b"ratelimit", b'"buyer";r=0;t=2'),)
    fail.clear()
    assert (await policies.headers("a", 1500))[0] == (b"ratelimit-policy", b'"buyer";q=1;w=5')  # failure not kept


async def test_rate_policies_malformed_sale_is_left_out() -> None:
    policies = RatePolicies(sale_hashes({"sale:{a}": ["fast", "1"]}, []))
    assert await policies.headers("a", 1500) == ((b"ratelimit", b'"buyer";r=0;t=2'),)


def test_problem_base_url_setting() -> None:
    env = {"REDIS_URL": "redis://r", "KAFKA_BOOTSTRAP": "k", "FLASHGATE_GATE_AUTH": "off"}
    assert GateSettings.from_env(env).problem_base_url == "/problems"
    url = "https://docs.example/problems.html"
    assert GateSettings.from_env({**env, "FLASHGATE_GATE_PROBLEM_BASE_URL": url}).problem_base_url == url
    assert GateSettings.from_env({**env, "FLASHGATE_GATE_PROBLEM_BASE_URL": ""}).problem_base_url == "/problems"
    for bad in ("https://x/p#frag", "https://x/a b", 'x"y'):
        with pytest.raises(ConfigError, match="FLASHGATE_GATE_PROBLEM_BASE_URL"):
            GateSettings.from_env({**env, "FLASHGATE_GATE_PROBLEM_BASE_URL": bad})
