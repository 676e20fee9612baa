"""Session fixtures: one isolated local stack for the whole test run, started by the launcher.

Under CI=true a stack that cannot start fails the run, and any skipped test fails it too:
tests that need Redis, PostgreSQL or Kafka must run there, never skip.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.stackctl import StackHandle, flashgate

IN_CI = os.environ.get("CI", "").lower() == "true"
TESTS = Path(__file__).parent
# The folder a test lives in is its kind (pyproject's markers): `-m "not integration and not e2e
# and not chaos"` is the unit suite, `-m integration` one real service per file, and so on.
FOLDER_MARKS = {"integration": "integration", "e2e": "e2e", "image": "e2e", "chaos": "chaos"}
# tests/image needs an image built by `make image`: `make test-image` names it; `make test` leaves it out.
collect_ignore = [] if os.environ.get("FLASHGATE_TEST_IMAGE") else ["image"]


def own_stack(
    what: str, suffix: str = "", *up_args: str, stop: Callable[[StackHandle], None] | None = None
) -> Iterator[StackHandle]:
    """The body of every stack fixture: `<FLASHGATE_TEST_STACK_DIR><suffix>` started by the launcher
    (a folder's own stack, `suffix` set, starts from scratch), then stopped (`stop`, or `stack down`)
    unless FLASHGATE_TEST_KEEP_STACK. A stack that cannot start fails under CI and skips elsewhere;
    `what` names it in that message.
    """
    base = Path(os.environ.get("FLASHGATE_TEST_STACK_DIR", ".stack-test")).resolve()
    state_dir = base.with_name(base.name + suffix)
    if suffix:
        flashgate("stack", "down", "--state-dir", str(state_dir), check=False)
        shutil.rmtree(state_dir, ignore_errors=True)
    began = time.monotonic()
    try:
        handle = StackHandle.up(state_dir, *up_args)
    except AssertionError as e:
        if IN_CI:
            pytest.fail(f"the {what} did not start: {e}", pytrace=False)
        pytest.skip(f"the {what} did not start: {e}")
    print(f"{what} up in {time.monotonic() - began:.1f} s")
    try:
        yield handle
    finally:
        if not os.environ.get("FLASHGATE_TEST_KEEP_STACK"):
            if stop is None:
                flashgate("stack", "down", "--state-dir", str(state_dir), check=False)
            else:
                stop(handle)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    """The running test stack (own state folder, free ports); stopped at the end of the session."""
    yield from own_stack("local stack")


@pytest.fixture
def name() -> str:
    """A random name for per-test isolation (SKUs, topics, keys)."""
    return f"t{uuid.uuid4().hex[:12]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder (FOLDER_MARKS); tests/unit stays unmarked."""
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
        if mark := FOLDER_MARKS.get(folder):
            item.add_marker(mark)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped; nothing may skip in CI", red=True)
