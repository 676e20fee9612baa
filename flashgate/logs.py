"""One log format for every process: `--log-format text|json` and `--log-level`, or their variables.

Every process (gate and its server processes, relay, worker, monitor, reconciler) logs through
the root logger with one handler on stderr, set here. `json` writes one object per line with
the same keys everywhere: `ts` (UTC, ms), `level`, `logger`, `msg`, then the context a line was
given with `extra=` (`request_id`, `trace_id`, `sku`, `order_id`) and `exc` for a traceback.
librdkafka's lines arrive through the `flashgate.kafka` logger (flashgate/kafka_client.py) and
granian's through `_granian`, so they take the same format.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import msgspec

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT_ENV = "FLASHGATE_LOG_FORMAT"
LEVEL_ENV = "FLASHGATE_LOG_LEVEL"
TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CONTEXT = ("request_id", "trace_id", "sku", "order_id")  # `extra=` keys a line may carry

# granian's own loggers hand their lines to ours (its dictConfig replaces `loggers` only).
GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    }
}

_encode = msgspec.json.Encoder().encode


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, the context keys present, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _encode(out).decode()


def setup(log_format: str = "text", level: str = "INFO") -> None:
    """Root logger: one stderr handler in `log_format`, at `level` (names as in LEVELS)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


F = TypeVar("F", bound=Callable[..., Any])


def log_options(default_level: str = "INFO") -> Callable[[F], F]:
    """--log-format and --log-level on a command; the command calls `setup` with them."""

    def add(f: F) -> F:
        f = click.option(
            "--log-level", envvar=LEVEL_ENV, show_envvar=True, default=default_level, show_default=True,
            type=click.Choice(LEVELS, case_sensitive=False), help="Least severe level logged.",
        )(f)  # fmt: skip
        return click.option(
            "--log-format", envvar=FORMAT_ENV, show_envvar=True, default="text", show_default=True,
            type=click.Choice(FORMATS), help="text, or json: one object per line (ts, level, logger, msg, context).",
        )(f)  # fmt: skip

    return add


def from_env(default_level: str = "INFO") -> tuple[str, str]:
    """The format and level the environment asks for (server processes that have no options)."""
    return os.environ.get(FORMAT_ENV, "text"), os.environ.get(LEVEL_ENV, default_level)
