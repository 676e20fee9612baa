"""The runtime wheel leaves the bench and uvicorn out: asking for them without the extra is one line, exit 1."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

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
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    env = {"FLASHGATE_AUTH": "off", "REDIS_URL": "redis://127.0.0.1:1/0", "KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    line = one_line_error(["gate", "--server", "uvicorn", "--workers", "1"], env=env)
    assert "flashgate[uvicorn]" in line
