"""flashgate/logs.py: one JSON object per line with the same keys everywhere, and the options every process takes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from flashgate import logs


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    r = logging.LogRecord("flashgate.kafka", logging.WARNING, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(r, k, v)
    return r


def test_json_lines_carry_the_common_keys_and_the_context_given() -> None:
    line = logs.JsonFormatter().format(record("broker %s down", "k:1", sku="S1", request_id="r-1", other="x"))
    got = json.loads(line)
    assert set(got) == {"ts", "level", "logger", "msg", "sku", "request_id"}
    assert (got["level"], got["logger"], got["msg"]) == ("WARNING", "flashgate.kafka", "broker k:1 down")
    assert got["ts"].endswith("+00:00")
    assert "\n" not in line


def test_json_lines_carry_a_traceback_in_one_line() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        r = record("failed")
        r.exc_info = sys.exc_info()
    got = json.loads(logs.JsonFormatter().format(r))
    assert "ValueError: bad" in got["exc"]


@pytest.mark.usefixtures("root_restored")
def test_setup_leaves_one_handler_in_the_format_and_level_asked() -> None:
    logs.setup("json", "debug")
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    assert root.level == logging.DEBUG
    logs.setup("text", "WARNING")
    assert not isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    assert root.level == logging.WARNING


@click.command()
@logs.log_options(default_level="WARNING")
def probe(log_format: str, log_level: str) -> None:
    click.echo(f"{log_format} {log_level}")


def test_options_take_the_environment_and_refuse_what_they_do_not_know() -> None:
    assert CliRunner().invoke(probe, []).output == "text WARNING\n"
    assert CliRunner().invoke(probe, [], env={"FLASHGATE_LOG_FORMAT": "json"}).output == "json WARNING\n"
    assert CliRunner().invoke(probe, ["--log-level", "info"]).output == "text INFO\n"
    refused = CliRunner().invoke(probe, ["--log-format", "xml"])
    assert refused.exit_code == 2
    assert "'xml' is not one of 'text', 'json'" in refused.output
    assert "FLASHGATE_LOG_FORMAT" in CliRunner().invoke(probe, ["--help"]).output
