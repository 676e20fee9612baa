"""Fixtures of the micro-benchmarks: the stack's URLs from the environment, one uvloop event loop.

Run (stack up, `eval "$(flashgate stack env)"`):

    .venv/bin/pytest bench/micro -p benchmark --benchmark-columns=mean,median,ops,rounds

`-p benchmark` re-enables pytest-benchmark, which pyproject's addopts turn off for `make test`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
import uvloop


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f'{name} is not set: eval "$(flashgate stack env)" first', pytrace=False)
    return value


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _env("REDIS_URL")


@pytest.fixture(scope="session")
def database_url() -> str:
    return _env("DATABASE_URL")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A uvloop loop the benchmark drives with run_until_complete (pytest-benchmark is synchronous)."""
    lp = uvloop.new_event_loop()
    yield lp
    lp.close()
