"""The server's connection limits: their settings and the file-descriptor budget (gate/limits.py)."""

from __future__ import annotations

import resource

import pytest

from flashgate.settings import ConfigError
from gate.limits import FD_RESERVE, nofile_soft_limit
from gate.settings import GateSettings

ENV = {"REDIS_URL": "redis://x", "KAFKA_BOOTSTRAP": "k:1", "FLASHGATE_GATE_AUTH": "off"}
INF = resource.RLIM_INFINITY


def test_limits_defaults_and_overrides() -> None:
    s = GateSettings.from_env(ENV)
    assert (s.max_connections, s.header_read_timeout_ms, s.head_limit_bytes, s.listen_backlog) == (
        4096,
        10_000,
        16_384,
        4096,
    )
    assert s.max_connections == 2 * s.max_inflight
    s = GateSettings.from_env(
        {
            **ENV,
            "FLASHGATE_GATE_MAX_CONNECTIONS": "100",
            "FLASHGATE_GATE_MAX_INFLIGHT": "50",
            "FLASHGATE_GATE_HEADER_READ_TIMEOUT_MS": "1000",
            "FLASHGATE_GATE_HEAD_LIMIT_BYTES": "8192",
            "FLASHGATE_GATE_LISTEN_BACKLOG": "128",
        }
    )
    assert (s.max_connections, s.max_inflight, s.header_read_timeout_ms, s.head_limit_bytes, s.listen_backlog) == (
        100,
        50,
        1000,
        8192,
        128,
    )


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"FLASHGATE_GATE_MAX_CONNECTIONS": "2048"}, "MAX_CONNECTIONS must exceed FLASHGATE_GATE_MAX_INFLIGHT"),
        ({"FLASHGATE_GATE_MAX_INFLIGHT": "5000"}, "MAX_CONNECTIONS must exceed FLASHGATE_GATE_MAX_INFLIGHT"),
        ({"FLASHGATE_GATE_MAX_CONNECTIONS": "lots"}, "MAX_CONNECTIONS='lots': expected `int`"),
        ({"FLASHGATE_GATE_HEADER_READ_TIMEOUT_MS": "0"}, "HEADER_READ_TIMEOUT_MS"),
        ({"FLASHGATE_GATE_HEADER_READ_TIMEOUT_MS": "60001"}, "HEADER_READ_TIMEOUT_MS"),
        ({"FLASHGATE_GATE_HEAD_LIMIT_BYTES": "8191"}, "HEAD_LIMIT_BYTES"),
        ({"FLASHGATE_GATE_LISTEN_BACKLOG": "127"}, "LISTEN_BACKLOG"),
        ({"FLASHGATE_GATE_BODY_TIMEOUT_MS": "50"}, "BODY_TIMEOUT_MS='50': expected `int` >= 100"),
    ],
)
def test_limits_refuse_what_cannot_work(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GateSettings.from_env({**ENV, **env})


@pytest.mark.parametrize(
    ("soft", "hard", "expected"),
    [
        (20_000, 20_000, 20_000),  # enough already: left alone
        (INF, INF, INF),
        (1024, 20_000, 4096 + FD_RESERVE),  # raised to what is needed, not to the hard limit
        (1024, INF, 4096 + FD_RESERVE),
        (1024, 4096 + FD_RESERVE, 4096 + FD_RESERVE),
    ],
)
def test_nofile_soft_limit(soft: int, hard: int, expected: int) -> None:
    assert nofile_soft_limit(4096, soft, hard) == expected


def test_nofile_soft_limit_refuses_below_the_hard_limit() -> None:
    with pytest.raises(ConfigError, match=r"MAX_CONNECTIONS=4096 needs 4352 .* hard limit is 4096"):
        nofile_soft_limit(4096, 1024, 4096)
