"""gate/redis_batch.py against a connection double: which error replies open the breaker.

The double answers each command with the next reply queued for its name (`replies`), else "ok".
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError, TryAgainError

from gate.breaker import Breaker
from gate.errors import RedisUnavailable
from gate.redis_batch import RedisBatcher


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
