"""The one settings loader (flashgate/settings.py): names, deprecated aliases, types, errors, --help, the docs table."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flashgate.kafka_client import KafkaConfigError
from flashgate.settings import ConfigError, DeprecatedSetting, Settings, lookup, variables
from gate.serve import _old_envvar
from gate.settings import AuthSettings, GateSettings
from ops.cli import cli
from ops.monitor.settings import MonitorSettings
from reconcile.settings import ReconcileSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
URLS = {"REDIS_URL": "redis://r", "DATABASE_URL": "postgresql://d/x", "KAFKA_BOOTSTRAP": "k:1"}
GATE = {**URLS, "FLASHGATE_GATE_AUTH": "off"}
EVERY: tuple[type[Settings], ...] = (GateSettings, AuthSettings, WorkerSettings, MonitorSettings, ReconcileSettings)


def test_one_scheme_shared_names_and_process_scopes() -> None:
    assert {"REDIS_URL", "KAFKA_BOOTSTRAP", "FLASHGATE_TOPIC", "FLASHGATE_IDEM_TTL_S"} <= set(variables(GateSettings))
    assert "FLASHGATE_GATE_DB_POOL_MAX_SIZE" in variables(GateSettings)
    assert "FLASHGATE_WORKER_POOL_MAX_SIZE" in variables(WorkerSettings)
    for reader in (WorkerSettings, MonitorSettings, ReconcileSettings):
        assert {"FLASHGATE_TOPIC", "FLASHGATE_GROUP"} <= set(variables(reader))
    shared = ("FLASHGATE_TOPIC", "FLASHGATE_GROUP", "FLASHGATE_IDEM_TTL_S", "FLASHGATE_OTLP_ENDPOINT")
    for cls in EVERY:
        scoped = [v for v in variables(cls) if v.startswith("FLASHGATE_") and v not in shared]
        assert all(v.startswith(f"FLASHGATE_{cls.SCOPE}_") for v in scoped), (cls, scoped)


@pytest.mark.parametrize(
    ("cls", "old", "new", "field", "value"),
    [
        (GateSettings, "FLASHGATE_LINGER_MS", "FLASHGATE_GATE_LINGER_MS", "linger_ms", 7),
        (GateSettings, "FLASHGATE_DB_POOL_MAX", "FLASHGATE_GATE_DB_POOL_MAX_SIZE", "db_pool_max_size", 5),
        (GateSettings, "FLASHGATE_RELAY", "FLASHGATE_GATE_RELAY", "relay_enabled", False),
        (WorkerSettings, "FLASHGATE_WORKER_TOPIC", "FLASHGATE_TOPIC", "topic", "off"),
        (WorkerSettings, "FLASHGATE_WORKER_GROUP", "FLASHGATE_GROUP", "group", "off"),
        (MonitorSettings, "FLASHGATE_MONITOR_TOPIC", "FLASHGATE_TOPIC", "topic", "off"),
        (ReconcileSettings, "FLASHGATE_WORKER_GROUP", "FLASHGATE_GROUP", "group", "off"),
    ],
)
def test_an_old_name_still_works_and_warns_once(
    cls: type[GateSettings], old: str, new: str, field: str, value: object
) -> None:
    env = {**GATE, old: str(value).replace("False", "off")}
    with pytest.warns(DeprecatedSetting, match=f"{old} is deprecated: use {new}"):
        assert getattr(cls.from_env(env=env), field) == value
    with warnings.catch_warnings():  # the same value under both names is no conflict
        warnings.simplefilter("ignore", DeprecatedSetting)
        assert getattr(cls.from_env(env={**env, new: env[old]}), field) == value


def test_the_warning_is_shown_once_per_process() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        for _ in range(3):
            lookup({"FLASHGATE_LINGER_MS": "3"}, "FLASHGATE_GATE_LINGER_MS", ("FLASHGATE_LINGER_MS",))
    assert [str(w.message) for w in seen] == ["FLASHGATE_LINGER_MS is deprecated: use FLASHGATE_GATE_LINGER_MS"]


def test_an_old_name_that_disagrees_with_the_new_one_is_an_error_naming_both() -> None:
    env = {**GATE, "FLASHGATE_LINGER_MS": "3", "FLASHGATE_GATE_LINGER_MS": "4"}
    with pytest.raises(ConfigError, match=r"FLASHGATE_LINGER_MS \(deprecated, now FLASHGATE_GATE_LINGER_MS\) and "):
        GateSettings.from_env(env)
    worker = {**URLS, "FLASHGATE_WORKER_TOPIC": "a", "FLASHGATE_TOPIC": "b"}
    with pytest.raises(ConfigError, match=r"FLASHGATE_WORKER_TOPIC .* FLASHGATE_TOPIC"):
        WorkerSettings.from_env(env=worker)


def test_a_conflict_never_shows_a_secret() -> None:
    env = {**URLS, "FLASHGATE_JWT_HS256_SECRET": "old-s3cret", "FLASHGATE_GATE_JWT_HS256_SECRET": "new-s3cret"}
    with pytest.raises(ConfigError, match="FLASHGATE_JWT_HS256_SECRET") as info:
        GateSettings.from_env(env)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("cls", "variable", "raw", "message"),
    [
        (GateSettings, "FLASHGATE_GATE_LINGER_MS", "soon", "FLASHGATE_GATE_LINGER_MS='soon': expected `int`"),
        (GateSettings, "FLASHGATE_GATE_REDIS_TIMEOUT_MS", "5000", "REDIS_TIMEOUT_MS='5000': expected `int` <= 1000"),
        (GateSettings, "FLASHGATE_GATE_ADMIT_WINDOW_MS", "60", "ADMIT_WINDOW_MS='60': expected `int` <= 50"),
        (GateSettings, "FLASHGATE_GATE_ADMIT_WINDOW_MS", "-1", "ADMIT_WINDOW_MS='-1': expected `int` >= 0"),
        (WorkerSettings, "FLASHGATE_WORKER_DLQ_TIMEOUT_S", "long", "DLQ_TIMEOUT_S='long': expected `float`"),
        (MonitorSettings, "FLASHGATE_MONITOR_TIMEOUT_MS", "99", "TIMEOUT_MS='99': expected `int` >= 100"),
        (ReconcileSettings, "FLASHGATE_RECONCILE_BACKLOG_TIMEOUT_S", "x", "BACKLOG_TIMEOUT_S='x': expected `float`"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(
    cls: type[GateSettings], variable: str, raw: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        cls.from_env(env={**GATE, variable: raw})


def test_missing_variables_are_named_together() -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_URL, DATABASE_URL, KAFKA_BOOTSTRAP are not set \(hint"):
        ReconcileSettings.from_env({})
    with pytest.raises(ConfigError, match=r"^DATABASE_URL is not set"):
        WorkerSettings.from_env(env={"KAFKA_BOOTSTRAP": "k"})


def test_an_empty_variable_counts_as_unset() -> None:
    s = WorkerSettings.from_env(env={**URLS, "FLASHGATE_WORKER_BATCH_MAX_ROWS": "", "FLASHGATE_TOPIC": ""})
    assert (s.batch_max_rows, s.topic) == (2000, "orders")


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(ConfigError, match="FLASHGATE_WORKER_BATCH_MAX_ROWS=0: expected `int` >= 1"):
        WorkerSettings(database_url="d", kafka_bootstrap="k", batch_max_rows=0)
    with pytest.raises(ConfigError, match="need FLASHGATE_WORKER_RETRY_INITIAL_MS <= FLASHGATE_WORKER_RETRY_MAX_MS"):
        WorkerSettings(database_url="d", kafka_bootstrap="k", retry_initial_ms=10, retry_max_ms=5)
    with pytest.raises(ConfigError, match="FLASHGATE_GATE_REDIS_TIMEOUT_MS=5: expected `int` >= 50"):
        GateSettings(redis_url="r", kafka_bootstrap="k", auth=AuthSettings(disabled=True), redis_timeout_ms=5)
    with pytest.raises(ConfigError, match="FLASHGATE_MONITOR_PORT=70000"):
        MonitorSettings(redis_url="r", kafka_bootstrap="k", port=70000)
    with pytest.raises(ConfigError, match="FLASHGATE_IDEM_TTL_S=0"):
        ReconcileSettings("r", "d", "k", idem_ttl_s=0)


def test_cli_options_win_over_the_environment_and_are_checked() -> None:
    env = {**URLS, "FLASHGATE_WORKER_BATCH_MAX_ROWS": "10"}
    assert WorkerSettings.from_env({"batch_max_rows": 20, "topic": None}, env=env).batch_max_rows == 20
    with pytest.raises(ConfigError, match="FLASHGATE_WORKER_BATCH_MAX_ROWS=0"):
        WorkerSettings.from_env({"batch_max_rows": 0}, env=env)


def test_kafka_settings_errors_are_config_errors() -> None:
    assert issubclass(KafkaConfigError, ConfigError)
    with pytest.raises(ConfigError, match="FLASHGATE_KAFKA_SECURITY_PROTOCOL"):
        WorkerSettings.from_env(env={**URLS, "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "TLS"})


@pytest.fixture
def probe() -> click.Command:
    @click.command()
    @click.option("--port", default=8000, envvar="FLASHGATE_GATE_PORT", callback=_old_envvar("FLASHGATE_PORT"))
    def command(port: int) -> None:
        click.echo(f"port {port}")

    return command


def test_a_gate_option_reads_its_old_variable(probe: click.Command) -> None:
    runner = CliRunner()
    with pytest.warns(DeprecatedSetting, match="FLASHGATE_PORT is deprecated: use FLASHGATE_GATE_PORT"):
        assert runner.invoke(probe, [], env={"FLASHGATE_PORT": "9001"}).output == "port 9001\n"
    assert runner.invoke(probe, [], env={"FLASHGATE_GATE_PORT": "9002"}).output == "port 9002\n"
    given = runner.invoke(probe, ["--port", "9003"], env={"FLASHGATE_PORT": "1", "FLASHGATE_GATE_PORT": "2"})
    assert given.output == "port 9003\n"
    assert runner.invoke(probe, []).output == "port 8000\n"


def test_a_gate_option_whose_old_variable_disagrees_is_a_usage_error(probe: click.Command) -> None:
    done = CliRunner().invoke(probe, [], env={"FLASHGATE_PORT": "1", "FLASHGATE_GATE_PORT": "2"})
    assert done.exit_code == 2
    assert "FLASHGATE_PORT (deprecated, now FLASHGATE_GATE_PORT) and FLASHGATE_GATE_PORT" in done.output


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("gate", ["FLASHGATE_GATE_HOST", "FLASHGATE_GATE_PORT", "FLASHGATE_GATE_WORKERS", "FLASHGATE_GATE_SERVER"]),
        ("worker", ["FLASHGATE_WORKER_BATCH_MAX_ROWS", "FLASHGATE_WORKER_METRICS_PORT", "FLASHGATE_TOPIC"]),
        ("monitor", ["FLASHGATE_MONITOR_PORT", "FLASHGATE_MONITOR_INTERVAL_MS", "FLASHGATE_GROUP"]),
        ("reconcile", ["FLASHGATE_TOPIC", "FLASHGATE_GROUP", "FLASHGATE_IDEM_TTL_S"]),
    ],
)
def test_help_names_the_variables(command: str, names: list[str]) -> None:
    done = CliRunner().invoke(cli, [command, "--help"], env={}, terminal_width=200)
    assert done.exit_code == 0, done.output
    flat = " ".join(done.output.split())
    assert [n for n in names if n not in flat] == []


def test_the_configuration_page_lists_every_variable_and_old_name() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    listed = set(re.findall(r"`((?:FLASHGATE|PROMETHEUS)_[A-Z0-9_]+|REDIS_URL|DATABASE_URL|KAFKA_BOOTSTRAP)`", page))
    for cls in EVERY:
        for name, old in variables(cls).items():
            assert {name, *old} <= listed, (cls.__name__, name, old)


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_option_read_from_the_environment_names_its_variable_in_help() -> None:
    """Every command and subcommand: an option with an env variable shows it in `--help`, with no environment."""
    missing = []
    for path, command in _commands(cli):
        done = CliRunner().invoke(cli, [*path, "--help"], env={}, terminal_width=400)
        assert done.exit_code == 0, (path, done.output)
        flat = " ".join(done.output.split())
        for param in command.params:
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
            missing += [(" ".join(path), name) for name in names if name not in flat]
    assert missing == []
