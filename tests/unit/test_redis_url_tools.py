"""A bad REDIS_URL is one line naming the variable, with an exit code, in every tool that reads it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flashgate.settings import ConfigError
from ops.cli import cli
from ops.monitor.settings import MonitorSettings
from reconcile.settings import ReconcileSettings

BAD = "redis+cluster://:secret@127.0.0.1:1/5"
ENV = {"REDIS_URL": BAD, "DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "KAFKA_BOOTSTRAP": "127.0.0.1:1"}


def test_reconcile_settings_refuse_it() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL: a Redis Cluster has database 0 only"):
        ReconcileSettings.from_env(ENV)


def test_monitor_settings_refuse_it() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL: a Redis Cluster has database 0 only"):
        MonitorSettings.from_env(env=ENV)


@pytest.mark.parametrize("args", [["sale", "show", "s1"], ["reconcile", "--sku", "s1"]])
def test_the_cli_says_it_in_one_line(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, env=ENV)
    assert result.exit_code in (1, 2), result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert "REDIS_URL: a Redis Cluster has database 0 only" in lines[0]
    assert "secret" not in result.output
