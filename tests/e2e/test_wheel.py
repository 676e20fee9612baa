"""The built wheel works outside the checkout: migrate, gate and worker from a fresh venv, one order round trip.

The venv gets the runtime dependencies only, at the versions of uv.lock, from uv's cache (no
network once `make bootstrap` has run), then the wheel itself. Every flashgate process runs with
its working directory outside the repository, so nothing can be read from the checkout: the Lua
scripts and the migrations must come from the package data. The migrations go into a database of
their own, and the gate and worker use it, so the order's row proves that schema came from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.pipeline import create_topics, new_database, one_order_persisted
from tests.support.procs import FlashgateProcess, GateProcess
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"
# What the runtime must do without: the bench's charts and the second ASGI server are extras.
NOT_RUNTIME = ("matplotlib", "uvicorn", "pytest", "mypy")


@dataclass(frozen=True)
class Installed:
    flashgate: str  # the venv's `flashgate` script
    python: str
    cwd: Path  # outside the repository
    env: dict[str, str]  # the test's environment without anything that points into the checkout


def uv(*args: str) -> str:
    done = subprocess.run([str(UV), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"uv {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    uv("build", "--wheel", "--out-dir", str(work / "dist"))
    (wheel,) = (work / "dist").glob("flashgate-*.whl")
    venv = work / "venv"
    # The runtime dependencies of uv.lock, without dev group, extras or the project itself.
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    sync = ["sync", "--frozen", "--no-dev", "--no-install-project", "--offline", "--python", sys.executable]
    done = subprocess.run([str(UV), *sync], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:  # a cold uv cache: the same from the index
        sync.remove("--offline")
        done = subprocess.run(
            [str(UV), *sync], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
        )
    assert done.returncode == 0, done.stderr
    python = str(venv / "bin" / "python")
    uv("pip", "install", "--no-deps", "--python", python, str(wheel))
    uv("pip", "check", "--python", python)  # the wheel's declared dependencies are all there
    clean = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    clean["PATH"] = f"{venv / 'bin'}:{clean.get('PATH', '')}"
    cwd = work / "run"
    cwd.mkdir()
    return Installed(flashgate=str(venv / "bin" / "flashgate"), python=python, cwd=cwd, env=clean)


def run(installed: Installed, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed.flashgate, *args],
        cwd=installed.cwd, env={**installed.env, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def database(stack: StackHandle, name: str) -> Iterator[str]:
    with new_database(stack, name) as url:
        yield url


def test_the_venv_holds_the_runtime_only_and_reads_package_data(installed: Installed) -> None:
    probe = (
        "import importlib.util as u, flashgate.names as n, ops.migrate as m, gate.app;"
        f"print([x for x in {NOT_RUNTIME!r} if u.find_spec(x)]);"
        "print(gate.app.__file__); print(n.LUA_DIR); print(len(m.load()))"
    )
    done = subprocess.run(
        [installed.python, "-c", probe],
        cwd=installed.cwd, env=installed.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    missing_extras, app_file, lua_dir, migrations = done.stdout.split("\n")[:4]
    assert missing_extras == "[]"
    venv = str(Path(installed.python).parent.parent)
    assert app_file.startswith(venv)
    assert lua_dir.startswith(venv)
    assert int(migrations) == len(list((ROOT / "flashgate" / "sql").glob("*.sql")))


def test_migrate_gate_and_worker_from_the_wheel(
    installed: Installed, stack: StackHandle, database: str, name: str, tmp_path: Path
) -> None:
    urls = {**stack.env, "DATABASE_URL": database}
    migrated = run(installed, "migrate", env=urls)
    expected = sorted(p.name for p in (ROOT / "flashgate" / "sql").glob("*.sql"))
    assert (migrated.returncode, migrated.stdout.strip()) == (
        0,
        f"applied {len(expected)} migration(s): {', '.join(expected)}",
    ), migrated.stderr
    created = run(installed, "sale", "create", "--sku", name, "--name", "Shoe", "--stock", "3", env=urls)
    assert created.returncode == 0, created.stderr

    topics = create_topics(stack, name, partitions=1)
    worker_env = {
        **installed.env, **urls,
        "FLASHGATE_TOPIC": topics.orders, "FLASHGATE_WORKER_DLQ_TOPIC": topics.dlq,
        "FLASHGATE_GROUP": topics.group,
    }  # fmt: skip
    worker = FlashgateProcess.spawn(
        ["worker"], worker_env, tmp_path / "venv-worker.log", executable=installed.flashgate, cwd=installed.cwd
    )
    # Relay off: another test's leftover outbox entries must not be republished to this test's topic.
    gate = GateProcess.start(
        stack, tmp_path / "gate.log", settings={"topic": topics.orders, "relay": "off"},
        executable=installed.flashgate, env={**installed.env, **urls}, cwd=installed.cwd,
    )  # fmt: skip
    try:
        state = one_order_persisted(gate.base_url, database, name, worker.log)
        assert state.units_sold == 1
        # The default base of problem `type` URIs resolves here too: the page ships in the wheel.
        page = httpx.get(f"{gate.base_url}/problems", timeout=10)
        assert (page.status_code, page.text) == (200, (ROOT / "docs" / "problems.md").read_text())
    finally:
        gate.close()
        worker.close()
