"""gate/redis_batch.py against a connection double: which error replies open the breaker, and WAIT after a
cluster admission (a WAIT no replica acknowledged is counted, by node).

The double answers each command with the next reply queued for its name (`replies`), else "ok".
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError, TryAgainError

from flashgate.orderindex import sku_slot
from flashgate.redis_url import ClusterUrl
from gate.breaker import Breaker
from gate.errors import RedisUnavailable
from gate.metrics import GateMetrics
from gate.redis_batch import WAIT_PAUSE_S, RedisBatcher
from gate.redis_cluster import ClusterBatcher, SlotMap


class ScriptedConnection:
    """Enough of redis-py's asyncio Connection for RedisBatcher: records command names, answers from `replies`."""

    def __init__(self, replies: dict[str, list[Any]], sent: list[str], **_: Any) -> None:
        self._script, self._sent = replies, sent
        self._replies: list[Any] = []

    async def send_packed_command(self, packed: list[bytes], check_health: bool = True) -> None:
        for command in packed:
            name = command.split(b"\r\n")[2].decode()
            self._sent.append(name)
            queued = self._script.get(name)
            self._replies.append(queued.pop(0) if queued else "ok")

    async def read_response(self) -> Any:
        reply = self._replies.pop(0)
        if isinstance(reply, ResponseError):
            raise reply  # as redis-py's parser does with an error reply
        return reply

    async def disconnect(self, nowait: bool = False) -> None:
        self._replies.clear()


def fake_client(replies: dict[str, list[Any]], sent: list[str]) -> aioredis.Redis:
    pool = aioredis.ConnectionPool(connection_class=ScriptedConnection, replies=replies, sent=sent)  # type: ignore[arg-type]
    return aioredis.Redis(connection_pool=pool)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("reply", "opens"),
    [
        (MovedError("1027 127.0.0.1:7001"), False),
        (AskError("1027 127.0.0.1:7001"), False),
        (TryAgainError("Multiple keys request during rehashing of slot"), False),
        (ClusterDownError("The cluster is down"), True),
        (ResponseError("READONLY You can't write against a read only replica."), True),
        (ResponseError("OOM command not allowed when used memory > 'maxmemory'."), True),
    ],
)
async def test_only_a_redirection_leaves_the_breaker_closed(reply: ResponseError, opens: bool) -> None:
    """A slot moving off a node must not refuse the node's other slots: the node answered, for another's sake."""
    batcher = RedisBatcher(fake_client({"EVALSHA": [reply] * 3}, []), Breaker(3, 0.5), timeout_s=1)
    try:
        for _ in range(3):
            with pytest.raises(RedisUnavailable) as refused:
                await batcher.call("EVALSHA", "sha", 1, "k:{s}")
            assert refused.value.__cause__ is reply
        assert batcher.breaker_open is opens
        if not opens:
            assert await batcher.call("EVALSHA", "sha", 1, "k:{other}") == "ok"
    finally:
        await batcher.close()


async def test_a_wait_no_replica_acknowledged_is_counted_and_pauses_wait() -> None:
    sent: list[str] = []
    unacked: list[float] = []
    clock = Clock()
    batcher = RedisBatcher(
        fake_client({"WAIT": [0, 1]}, sent), Breaker(3, 0.5), timeout_s=1, clock=clock, wait_ms=50,
        unacked=lambda: unacked.append(clock.now),
    )  # fmt: skip
    try:
        assert await batcher.call("EVALSHA", "sha", 1, "k:{s}") == "ok"  # the answer stands: the stock is taken
        assert (sent, unacked) == (["EVALSHA", "WAIT"], [1000.0])
        clock.now += WAIT_PAUSE_S - 0.1  # paused: no WAIT, nothing counted
        assert await batcher.call("EVALSHA", "sha", 1, "k:{s}") == "ok"
        assert (sent[2:], len(unacked)) == (["EVALSHA"], 1)
        clock.now += 0.2  # WAIT again; a replica acknowledges: not counted
        assert await batcher.call("EVALSHA", "sha", 1, "k:{s}") == "ok"
        assert (sent[3:], len(unacked)) == (["EVALSHA", "WAIT"], 1)
        assert await batcher.call("GET", "k:{s}") == "ok"  # no script, no WAIT
        assert sent[5:] == ["GET"]
    finally:
        await batcher.close()


async def test_a_cluster_counts_unacknowledged_waits_by_primary() -> None:
    replies: dict[str, list[Any]] = {"WAIT": [0, 1]}
    sent: list[str] = []
    unacked: list[str] = []
    rt = ClusterBatcher(
        ClusterUrl((("10.0.0.1", 7000),)), lambda: Breaker(3, 0.5), timeout_s=1, wait_ms=50, unacked=unacked.append
    )
    rt._client = lambda address: fake_client(replies, sent)  # type: ignore[method-assign]
    rt._map = SlotMap(((0, 8191, ("10.0.0.1", 7000)), (8192, 16383, ("10.0.0.2", 7001))))
    try:
        a = next(f"a{i}" for i in range(100) if rt.slot_map.node(sku_slot(f"a{i}")) == ("10.0.0.2", 7001))
        b = next(f"b{i}" for i in range(100) if rt.slot_map.node(sku_slot(f"b{i}")) == ("10.0.0.1", 7000))
        assert await rt.call("EVALSHA", "sha", 1, f"k:{{{a}}}") == "ok"
        assert await rt.call("EVALSHA", "sha", 1, f"k:{{{b}}}") == "ok"
        assert unacked == ["10.0.0.2:7001"]
    finally:
        await rt.close()


def test_the_metric_counts_by_node() -> None:
    metrics = GateMetrics()
    metrics.wait_unacked("10.0.0.2:7001")
    metrics.wait_unacked("10.0.0.2:7001")
    metrics.publish()
    metrics.wait_unacked("10.0.0.2:7001")
    metrics.publish()
    registry: CollectorRegistry = metrics.registry
    value = registry.get_sample_value("flashgate_gate_redis_wait_unacked_total", {"node": "10.0.0.2:7001"})
    assert value == 3
    assert not metrics.redis_wait_unacked  # published and reset
