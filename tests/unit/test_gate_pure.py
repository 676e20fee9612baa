"""Pure parts of the gate: breaker, admit.lua reply parsing, order ids and slots, settings, order status."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from flashgate.fingerprint import StoredAnswer
from flashgate.orderindex import (
    CALL_ORDERS_MAX,
    IndexEntry,
    call_field,
    encode_call,
    index_fields,
    index_key,
    key_slot,
    lookup,
    new_order_id,
    new_order_id_texts,
    new_order_ids,
    order_day,
    order_slot,
    sku_slot,
    slot_tag,
    text_slot,
)
from flashgate.outbox import OutboxOrder, decode_entry, entry_fields
from flashgate.settings import ConfigError
from gate.admission import Admission, Code, IndexedOrder, parse_admit
from gate.answers import status_answer
from gate.breaker import Breaker
from gate.errors import NotFound
from gate.ratelimit import allowance_fields
from gate.records import PersistedOrder
from gate.settings import GateSettings
from gate.throttled_log import ThrottledLog

ENV = {"REDIS_URL": "redis://x", "KAFKA_BOOTSTRAP": "k:1", "FLASHGATE_GATE_AUTH": "off"}


def test_breaker_opens_after_consecutive_failures_and_probes_once() -> None:
    b = Breaker(failures_to_open=2, cooldown_s=1.0)
    b.failure(0.0)
    assert b.allow(0.1)
    b.success()
    b.failure(0.2)
    b.failure(0.3)
    assert b.is_open
    assert not b.allow(0.5)
    assert b.allow(1.4)  # the probe
    assert not b.allow(1.4)  # only one
    b.failure(1.5)
    assert not b.allow(2.0)
    assert b.allow(2.6)
    b.success()
    assert not b.is_open
    assert b.allow(2.6)
    assert b.allow(2.6)


def test_parse_admit_every_code() -> None:
    ids = ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"]
    raw = [
        0, 5, "1-0", 3, 0,
        1, 0, "o", 5, 1,
        1, 8, "", 0, 0,
        2, 0, 0, 0, 0,
        4, 1500, 0, 0, 0,
        6, 20, 0, 0, 0,
        8, 0, 7, 0, 0,
        7, 2, 0, 0, 0,
    ]  # fmt: skip
    assert parse_admit(raw, ids) == [
        Admission(Code.ACCEPTED, "o1", 5, "1-0", stock_left=3),
        Admission(Code.ACCEPTED, "o", 5, replayed=True, pending=True),
        Admission(Code.SOLD_OUT, replayed=True),
        Admission(Code.MISMATCH),
        Admission(Code.NOT_STARTED, wait_ms=1500),
        Admission(Code.RATE_LIMITED, wait_ms=20),
        Admission(Code.SOLD_OUT, stock_left=0, buyers=7),
        Admission(Code.USER_LIMIT),
    ]
    with pytest.raises(ValueError, match="99"):
        parse_admit([99, 0, 0, 0, 0], ["o"])
    with pytest.raises(ValueError, match="42"):  # a replay of a stored code no header lists
        parse_admit([1, 42, "o", 0, 0], ["o"])
    with pytest.raises(ValueError, match="5 slots for 2 orders"):
        parse_admit([0, 5, "1-0", 3, 0], ["o1", "o2"])


def test_an_outbox_entry_holds_the_orders_of_one_call() -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    orders = [OutboxOrder("1-0", "id1", "user", 2, "key", 17), OutboxOrder("1-0", "id2", "u2", 1, "k2", 17, trace)]
    fields = entry_fields(orders)
    assert fields == {"t": "17", "b": "id1\x1fuser\x1f2\x1fkey\x1f\x1eid2\x1fu2\x1f1\x1fk2\x1f" + trace}
    assert decode_entry(b"1-0", [x.encode() for kv in fields.items() for x in kv]) == orders
    assert decode_entry("1-0", [x for kv in entry_fields(orders[:1]).items() for x in kv]) == orders[:1]
    with pytest.raises(ValueError, match="same time"):
        entry_fields([orders[0], OutboxOrder("1-0", "id3", "u3", 1, "k3", 18)])
    with pytest.raises(ValueError, match="same time"):
        entry_fields([])


def test_an_outbox_entry_of_the_earlier_layout_is_one_order() -> None:
    """Entries written by gates before one entry per call (a rolling upgrade) are still read."""
    assert decode_entry("1-0", ["o", "id", "u", "user", "q", "2", "k", "key", "t", "17"]) == [
        OutboxOrder("1-0", "id", "user", 2, "key", 17)
    ]
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = ["o", "id", "u", "user", "q", "2", "k", "key", "t", "17", "p", traceparent]
    assert decode_entry("1-0", traced) == [OutboxOrder("1-0", "id", "user", 2, "key", 17, traceparent)]


def test_a_malformed_outbox_entry_is_refused() -> None:
    with pytest.raises(KeyError):
        decode_entry("1-0", ["o", "only-an-id"])
    with pytest.raises(ValueError, match="odd"):
        decode_entry("1-0", ["o"])
    with pytest.raises(ValueError, match="4 fields instead of 5"):
        decode_entry("1-0", ["t", "17", "b", "id\x1fuser\x1f2\x1fkey"])
    with pytest.raises(ValueError):
        decode_entry("1-0", ["t", "17", "b", "id\x1fuser\x1ftwo\x1fkey\x1f"])


def test_order_ids_are_uuid7_that_carry_the_sku_slot() -> None:
    slot = sku_slot("shoe-42")
    a, b = new_order_id(slot, 1_000), new_order_id(slot, 2_000)
    assert a.version == 7
    assert a.variant == uuid.RFC_4122
    assert a.int >> 80 == 1_000
    assert a < b
    assert order_slot(a) == order_slot(b) == text_slot(str(a)) == slot
    assert len({new_order_id(slot) for _ in range(1000)}) == 1000
    assert order_day(new_order_id(slot, 3 * 86_400_000 + 5)) == 3


@pytest.mark.parametrize("make", [lambda *a: [str(o) for o in new_order_ids(*a)], new_order_id_texts])
def test_the_order_ids_of_one_call_share_its_field_and_differ_in_their_position(
    make: Callable[[int, int, int], list[str]],
) -> None:
    slot = sku_slot("shoe-42")
    ids = make(slot, CALL_ORDERS_MAX, 7_000)
    assert ids == [str(uuid.UUID(o)) for o in ids]  # canonical text, as str(UUID) writes it
    assert uuid.UUID(ids[0]).int >> 80 == 7_000
    assert len(set(ids)) == CALL_ORDERS_MAX
    assert {call_field(o) for o in ids} == {ids[0][:33]}
    assert [int(o[33:], 16) for o in ids] == list(range(CALL_ORDERS_MAX))
    assert all(uuid.UUID(o).version == 7 and text_slot(o) == slot for o in ids)
    assert len({call_field(make(slot, 1, 7_000)[0]) for _ in range(1000)}) == 1000
    with pytest.raises(ValueError, match="at most 4096"):
        make(slot, CALL_ORDERS_MAX + 1, 7_000)


def test_slots_match_redis_cluster() -> None:
    # Values from the Redis Cluster specification (CLUSTER KEYSLOT).
    assert key_slot("123456789") == 0x31C3 % 16384
    assert key_slot("foo") == 12182
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers") == key_slot("user1000")
    assert key_slot("foo{}{bar}") == key_slot("foo{}{bar}")  # an empty tag hashes the whole key
    for slot in (0, 1, 12182, 16383):
        assert key_slot(f"x{{{slot_tag(slot)}}}y") == slot
    with pytest.raises(ValueError, match="outside"):
        slot_tag(16384)


def test_index_key_and_entry_round_trip() -> None:
    oid = new_order_id(sku_slot("shoe-42"), 5 * 86_400_000 + 1)
    assert key_slot(index_key(oid)) == sku_slot("shoe-42")
    assert index_key(oid).endswith(":5")
    entry = IndexEntry("shoe-42", "u:1", 2, "17-0")
    assert IndexEntry.decode(entry.encode()) == entry
    with pytest.raises(ValueError, match="unpack"):
        IndexEntry.decode("no separators")


def test_an_order_is_found_in_its_calls_index_entry_or_in_an_older_per_order_one() -> None:
    a, b, refused = (str(o) for o in new_order_ids(sku_slot("shoe-42"), 3))
    call = encode_call("shoe-42", "17-0", [(a, "u:1", 2), (b, "u:2", 1)])
    assert index_fields(uuid.UUID(b)) == [call_field(b), b]
    assert lookup(uuid.UUID(b), [call, None]) == IndexEntry("shoe-42", "u:2", 1, "17-0")
    assert lookup(uuid.UUID(a), [call.encode(), None]) == IndexEntry("shoe-42", "u:1", 2, "17-0")
    assert lookup(uuid.UUID(refused), [call, None]) is None  # in the call, not admitted
    assert lookup(uuid.UUID(a), [None, None]) is None
    old = IndexEntry("shoe-42", "u:9", 3, "16-0")
    assert lookup(uuid.UUID(a), [None, old.encode().encode()]) == old
    with pytest.raises(ValueError):
        lookup(uuid.UUID(a), ["no separators", None])


def test_settings_from_env_defaults_and_overrides() -> None:
    s = GateSettings.from_env({**ENV, "FLASHGATE_GATE_DELIVERY_BUDGET_MS": "300", "FLASHGATE_GATE_RELAY": "off"})
    assert (s.delivery_budget_ms, s.relay_enabled, s.auth.disabled, s.idem_ttl_s) == (300, False, True, 86_400)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"FLASHGATE_GATE_AUTH": "jwt"}, "JWT"),
        ({"FLASHGATE_GATE_REDIS_TIMEOUT_MS": "5000"}, "REDIS_TIMEOUT"),
        ({"FLASHGATE_GATE_RELAY_STALE_MS": "100"}, "RELAY_STALE"),
        ({"FLASHGATE_GATE_MAX_INFLIGHT": "x"}, "MAX_INFLIGHT='x': expected `int`"),
        ({"FLASHGATE_GATE_DB_TIMEOUT_MS": "0"}, "DB_TIMEOUT"),
        ({"FLASHGATE_GATE_KAFKA_COMPRESSION": "brotli"}, "KAFKA_COMPRESSION must be one of none"),
        ({"FLASHGATE_IDEM_TTL_S": "0"}, "FLASHGATE_IDEM_TTL_S='0': expected `int` >= 1"),
    ],
)
def test_settings_refuse_what_cannot_work(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GateSettings.from_env({**ENV, **env})


def test_settings_database_url_is_optional() -> None:
    assert GateSettings.from_env(ENV).database_url is None
    s = GateSettings.from_env({**ENV, "DATABASE_URL": "postgresql://db/x", "FLASHGATE_GATE_DB_POOL_MAX_SIZE": "3"})
    assert (s.database_url, s.db_pool_max_size, s.db_timeout_ms) == ("postgresql://db/x", 3, 250)


def test_settings_need_redis_url() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        GateSettings.from_env({"KAFKA_BOOTSTRAP": "k", "FLASHGATE_GATE_AUTH": "off"})


PERSISTED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_status_persisted_row_wins_over_redis() -> None:
    row = PersistedOrder("s", "alice", 2, PERSISTED_AT)
    answer = status_answer("o1", "alice", row, IndexedOrder("s", "alice", 2, pending=True))
    assert (answer.status, answer.code) == (200, "persisted")
    assert answer.body == {
        "order_id": "o1",
        "sku": "s",
        "qty": 2,
        "status": "persisted",
        "persisted_at": "2025-01-02T03:04:05+00:00",
    }


@pytest.mark.parametrize(("pending", "status"), [(True, "queued"), (False, "accepted")])
def test_status_from_redis_without_row(pending: bool, status: str) -> None:
    answer = status_answer("o1", "alice", None, IndexedOrder("s", "alice", 1, pending=pending))
    assert answer.body == {"order_id": "o1", "sku": "s", "qty": 1, "status": status}


@pytest.mark.parametrize(
    ("row", "indexed"),
    [
        (None, None),
        (PersistedOrder("s", "bob", 1, PERSISTED_AT), None),
        (None, IndexedOrder("s", "bob", 1, pending=False)),
    ],
)
def test_status_unknown_or_someone_elses_order_is_not_found(
    row: PersistedOrder | None, indexed: IndexedOrder | None
) -> None:
    with pytest.raises(NotFound):
        status_answer("o1", "alice", row, indexed)


def test_stored_answer_round_trip() -> None:
    accepted = StoredAnswer("fp", 0, "0192f0c4-0000-7000-8000-0000000000b1", 17, "5-0")
    refused = StoredAnswer("fp", 8)
    assert StoredAnswer.decode(accepted.encode()) == accepted
    assert refused.encode() == "fp\x1f8\x1f\x1f\x1f"
    assert StoredAnswer.decode(refused.encode()) == refused
    with pytest.raises(ValueError, match="unpack"):
        StoredAnswer.decode("fp")


def test_throttled_log_says_each_kind_once_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    lines: list[str] = []
    logger = logging.getLogger("t.throttled")
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        log = ThrottledLog(logger, 10.0, lambda: now[0])
        for t, kind in [(0, "OOM"), (1, "OOM"), (2, "MISCONF"), (9, "OOM"), (10, "OOM"), (30, "OOM")]:
            now[0] = t
            log.warning(kind, "refused: %s", kind)
    finally:
        logger.removeHandler(handler)
    assert lines == [
        "refused: OOM",
        "refused: MISCONF",
        "refused: OOM (2 more like it in the last 10 s)",
        "refused: OOM",
    ]


def test_a_202_of_a_rate_limited_sale_carries_what_is_left_of_the_burst() -> None:
    assert allowance_fields("2,3,0.5,3") == (
        (b"ratelimit-policy", b'"buyer";q=3;w=6'),
        (b"ratelimit", b'"buyer";r=2;t=3'),
    )
    adm = parse_admit([0, 1_700_000_000_000_000, "1-0", 7, "0,2,1,1"], ["o"])[0]
    assert adm.allowance == "0,2,1,1"
    assert parse_admit([0, 1, "1-0", 7, 0], ["o"])[0].allowance == ""  # no rate limit
