"""Redis from the launcher: round trip, and data kept across a graceful restart and a SIGKILL."""

from __future__ import annotations

import redis

from tests.support.stackctl import StackHandle


def client(stack: StackHandle) -> redis.Redis:
    return redis.Redis.from_url(stack.redis_url, socket_timeout=5)


def test_set_get_round_trip(stack: StackHandle, name: str) -> None:
    r = client(stack)
    r.set(f"{{{name}}}:k", "v1")
    assert r.get(f"{{{name}}}:k") == b"v1"


def test_data_survives_graceful_restart(stack: StackHandle, name: str) -> None:
    client(stack).set(f"{{{name}}}:k", "kept")
    stack.run("stop", "redis")
    assert stack.pids()["redis"] is None
    stack.run("start", "redis")
    assert client(stack).get(f"{{{name}}}:k") == b"kept"


def test_acknowledged_write_survives_kill(stack: StackHandle, name: str) -> None:
    # appendfsync always: a write Redis answered is on disk, so a crash cannot un-sell stock.
    client(stack).decrby(f"stock:{{{name}}}", 3)
    before = stack.pids()["redis"]
    stack.run("kill", "redis")
    assert stack.pids()["redis"] is None
    stack.run("start", "redis")
    assert stack.pids()["redis"] not in (None, before)
    assert client(stack).get(f"stock:{{{name}}}") == b"-3"
