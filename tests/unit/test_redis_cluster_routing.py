"""flashgate/redis_url.py and the pure parts of gate/redis_cluster.py: the URL, the slot map, which key routes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError, TryAgainError

from bench.procstat import redis_ports
from flashgate import names, orderindex
from flashgate.redis_url import ClusterUrl, RedisUrlError, check, is_cluster, parse_cluster
from flashgate.settings import ConfigError
from gate.breaker import Breaker
from gate.errors import RedisUnavailable
from gate.health import probe_redis
from gate.redis_batch import _reply_kind
from gate.redis_cluster import ClusterBatcher, SlotMap, routing_key
from gate.settings import GateSettings
from ops.stack.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_url_seeds_and_credentials() -> None:
    url = "rediss+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2:7001/0"
    assert is_cluster(url)
    assert not is_cluster("redis://h:1/0")
    parsed = parse_cluster(url)
    assert parsed == ClusterUrl((("10.0.0.1", 7000), ("10.0.0.2", 7001)), "app", "p@ss", tls=True)
    assert parsed.client_kwargs() == {"username": "app", "password": "p@ss", "ssl": True}
    assert parse_cluster("redis+cluster://h:1").client_kwargs() == {"username": None, "password": None}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://h:1/3", "database 0 only"),
        ("redis+cluster://h", "'h' is not host:port"),
        ("redis+cluster://h:1,:2", "':2' is not host:port"),
        ("redis+cluster://h:99999", "'h:99999' is not host:port"),
        ("http://h:1", "use redis://, rediss://, unix:// or redis+cluster://"),
    ],
)
def test_bad_urls_are_one_line_naming_the_variable(url: str, message: str) -> None:
    with pytest.raises(RedisUrlError, match=re.escape(message)) as e:
        check(url)
    assert str(e.value).startswith("REDIS_URL: ")


def test_the_gate_refuses_a_bad_url_at_start() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL: a Redis Cluster has database 0 only"):
        GateSettings.from_env(
            {"REDIS_URL": "redis+cluster://:secret@h:1/2", "KAFKA_BOOTSTRAP": "k:1", "FLASHGATE_GATE_AUTH": "off"}
        )
    env = {"REDIS_URL": "redis+cluster://h:1,h:2", "KAFKA_BOOTSTRAP": "k:1", "FLASHGATE_GATE_AUTH": "off"}
    s = GateSettings.from_env(env)
    assert (s.redis_url, s.redis_wait_ms) == ("redis+cluster://h:1,h:2", 100)
    with pytest.raises(ConfigError, match="FLASHGATE_GATE_REDIS_WAIT_MS must be below FLASHGATE_GATE_REDIS_TIMEOUT_MS"):
        GateSettings.from_env({**env, "FLASHGATE_GATE_REDIS_WAIT_MS": "250"})
    with pytest.raises(ConfigError, match=r"FLASHGATE_GATE_REDIS_WAIT_MS='-1': expected `int` >= 0"):
        GateSettings.from_env({**env, "FLASHGATE_GATE_REDIS_WAIT_MS": "-1"})


REPLY = [
    [5461, 10922, ["127.0.0.1", 7001, "id2", {}], ["127.0.0.1", 7004, "id5", {}]],
    [0, 5460, [b"127.0.0.1", 7000, b"id1", {}], [b"127.0.0.1", 7003, b"id4", {}]],
    [10923, 16383, ["127.0.0.1", 7002, "id3", {}]],
]


def test_slot_map_from_cluster_slots() -> None:
    m = SlotMap.parse(REPLY)
    assert [m.node(s) for s in (0, 5460, 5461, 10922, 10923, 16383)] == [
        ("127.0.0.1", 7000), ("127.0.0.1", 7000), ("127.0.0.1", 7001),
        ("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7002),
    ]  # fmt: skip
    assert m.primaries == [("127.0.0.1", 7000), ("127.0.0.1", 7001), ("127.0.0.1", 7002)]
    assert m.replicas == (("127.0.0.1", 7003), ("127.0.0.1", 7004))


def test_slots_no_node_serves() -> None:
    assert SlotMap(()).node(0) is None
    gap = SlotMap.parse([REPLY[0]])  # only the middle range
    assert (gap.node(5460), gap.node(5461), gap.node(10923)) == (None, ("127.0.0.1", 7001), None)


def test_routing_key_of_each_command_the_gate_sends() -> None:
    sku = "s1"
    assert routing_key(("EVALSHA", "abc", 2, names.outbox_key(sku), names.relay_lease_key(sku), "x")) == "outbox:{s1}"
    assert routing_key(("EVALSHA", "abc", 0, "x")) is None
    assert routing_key(("HKEYS", names.bought_key(sku))) == "bought:{s1}"
    assert routing_key(("SMEMBERS", names.SALE_REGISTRY)) == names.SALE_REGISTRY
    for keyless in (("PING",), ("SCRIPT", "LOAD", "return 1"), ("TIME",)):
        assert routing_key(keyless) is None


def test_every_key_of_an_admission_shares_the_skus_slot() -> None:
    sku = "sku-42"
    slot = orderindex.sku_slot(sku)
    oid = orderindex.new_order_id(slot)
    keys = [*names.sale_keys(sku), orderindex.index_key(oid), names.idem_prefix(sku), names.rate_prefix(sku)]
    keys += [names.idem_bucket(sku, 86400, 1_700_000_000_000), f"{names.rate_prefix(sku)}:1000:7"]
    keys += [names.relay_lease_key(sku)]
    assert {orderindex.key_slot(k) for k in keys} == {slot}


def test_nothing_scans_the_keyspace() -> None:
    """Discovery uses registries (docs/architecture.md, Scale-out).

    HSCAN of one SKU's hash is fine, SCAN of the keyspace is not.
    """
    pattern = re.compile(r"""(?<![hsz])scan_iter\(|\.scan\(|["']SCAN["']""", re.IGNORECASE)
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("gate", "worker", "ops", "flashgate", "bench")
        for path in (ROOT / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def test_every_script_opens_with_a_shebang() -> None:
    """`#!lua` makes Redis (7+) refuse a script touching a key outside its declared slot; a script without
    it runs in compatibility mode, where Redis lets it (tests/chaos/cluster runs every script on a cluster)."""
    scripts = sorted((ROOT / "flashgate" / "lua").glob("*.lua"))
    assert len(scripts) == 6
    assert [p.name for p in scripts if not p.read_text().startswith("#!lua")] == []


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (MovedError("4120 127.0.0.1:7001"), "MOVED"),
        (AskError("4120 127.0.0.1:7001"), "ASK"),
        (TryAgainError("Multiple keys request during rehashing of slot"), "TRYAGAIN"),
        (ClusterDownError("Hash slot not served"), "CLUSTERDOWN"),
        (ResponseError("READONLY You can't write against a read only replica."), "READONLY"),
    ],
)
def test_cluster_refusals_are_logged_by_their_kind(reply: ResponseError, kind: str) -> None:
    """redis-py drops the first word of these replies; the gate's throttled log still names them."""
    assert _reply_kind(reply) == kind


def test_bench_finds_every_redis_node() -> None:
    """The benches measure a cluster's Redis CPU over all its nodes."""
    assert redis_ports("redis+cluster://127.0.0.1:7000,127.0.0.1:7001") == [7000, 7001]
    assert redis_ports("redis://127.0.0.1:16379/0") == [16379]


async def test_a_cluster_that_never_answers_is_unready_and_refuses_at_once() -> None:
    """No seed answers (a closed port): the map stays empty, calls fail fast with 503, the probe fails."""
    rt = ClusterBatcher(ClusterUrl((("127.0.0.1", free_port()),)), lambda: Breaker(3, 0.5), timeout_s=0.5)
    await rt.start()
    try:
        assert rt.slot_map == SlotMap(())
        with pytest.raises(RedisUnavailable):
            rt.call("GET", names.stock_key("s1"))
        assert await probe_redis(rt, timeout_s=1) == "ConnectionError"
        assert not rt.breaker_open  # no node was asked, so no breaker counted anything
    finally:
        await rt.close()
