"""Session fixtures: one isolated local stack for the whole test run, started by the launcher.

Under CI=true a stack that cannot start fails the run, and any skipped test fails it too:
tests that need Redis, PostgreSQL or Kafka must run there, never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stackctl import StackHandle, flashgate

IN_CI = os.environ.get("CI", "").lower() == "true"
# tests/image needs an image built by `make image`: `make test-image` names it; `make test` leaves it out.
collect_ignore = [] if os.environ.get("FLASHGATE_TEST_IMAGE") else ["image"]


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    """The running test stack (own state folder, free ports); stopped at the end of the session."""
    state_dir = Path(os.environ.get("FLASHGATE_TEST_STACK_DIR", ".stack-test")).resolve()
    try:
        handle = StackHandle.up(state_dir)
    except AssertionError as e:
        if IN_CI:
            pytest.fail(f"the local stack did not start: {e}", pytrace=False)
        pytest.skip(f"the local stack did not start: {e}")
    yield handle
    if not os.environ.get("FLASHGATE_TEST_KEEP_STACK"):
        flashgate("stack", "down", "--state-dir", str(state_dir), check=False)


@pytest.fixture
def name() -> str:
    """A random name for per-test isolation (SKUs, topics, keys)."""
    return f"t{uuid.uuid4().hex[:12]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped; nothing may skip in CI", red=True)
