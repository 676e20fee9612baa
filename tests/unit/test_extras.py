"""The runtime wheel leaves the bench and uvicorn out: asking for them without the extra is one line, exit 1."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from click.testing import CliRunner

from gate.metrics import MULTIPROC_ENV
from ops.cli import cli


def one_line_error(args: list[str], env: dict[str, str] | None = None) -> str:
    done = CliRunner().invoke(cli, args, env=env)
    assert done.exit_code == 1, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1, done.output
    return lines[0]


@pytest.mark.parametrize("module", ["httpx", "matplotlib", "rich"])
def test_bench_without_its_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    line = one_line_error(["bench", "drain"])
    assert f"missing {module}" in line
    assert "flashgate[bench]" in line


def test_gate_on_uvicorn_without_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real_find_spec(name, *a)
    )
    # The refusal comes before the command touches the process (metrics folder, open-files limit).
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    env = {"FLASHGATE_GATE_AUTH": "off", "REDIS_URL": "redis://127.0.0.1:1/0", "KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    line = one_line_error(["gate", "--server", "uvicorn", "--workers", "1"], env=env)
    assert "flashgate[uvicorn]" in line
    assert MULTIPROC_ENV not in os.environ
