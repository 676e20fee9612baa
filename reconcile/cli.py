"""`flashgate reconcile`: show Redis drift against the record, repair it, or verify the invariants.

Exit codes: 0 nothing drifts (or every drift was repaired exactly), 1 something drifts (or a
repair had to clamp), 2 error (bad input, unknown SKU, a service that cannot be read).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any, TextIO, TypeVar

import asyncpg
import click
from confluent_kafka import KafkaException
from redis.exceptions import RedisError

from flashgate import logs
from flashgate.settings import ConfigError
from reconcile.errors import ReconcileError
from reconcile.render import as_json, table
from reconcile.run import reconcile
from reconcile.settings import ReconcileSettings
from reconcile.verify import parse_order_ids, verify

T = TypeVar("T")
EXIT_DRIFT = 1
EXIT_ERROR = 2


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run one reconciler coroutine; any failure is one line on stderr and exit 2."""
    try:
        return asyncio.run(work)
    except (ReconcileError, ConfigError) as e:
        message = str(e)
    except RedisError as e:
        message = f"Redis: {e}"
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        message = f"PostgreSQL: {e}"
    except KafkaException as e:
        message = f"Kafka: {e}"
    except OSError as e:
        message = f"cannot connect: {e}"
    click.echo(f"reconcile: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _settings() -> ReconcileSettings:
    try:
        return ReconcileSettings.from_env()
    except ConfigError as e:
        click.echo(f"reconcile: {e}", err=True)
        sys.exit(EXIT_ERROR)


@click.group("reconcile", invoke_without_command=True)
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable); default every SKU in PostgreSQL.")
@click.option("--apply", "do_apply", is_flag=True, help="Repair the drift (atomic, relative; safe while selling).")
@click.option("--json", "as_json_output", is_flag=True, help="Machine-readable output.")
@logs.log_options(default_level="WARNING")
@click.pass_context
def reconcile_group(
    ctx: click.Context, skus: tuple[str, ...], do_apply: bool, as_json_output: bool, log_format: str, log_level: str
) -> None:
    """Compare Redis with PostgreSQL + Kafka backlog + outbox per SKU; --apply repairs. Dry run by default.

    Reads REDIS_URL, DATABASE_URL, KAFKA_BOOTSTRAP, FLASHGATE_TOPIC, FLASHGATE_GROUP,
    FLASHGATE_IDEM_TTL_S, FLASHGATE_RECONCILE_BACKLOG_TIMEOUT_S and FLASHGATE_KAFKA_*
    (docs/configuration.md).
    """
    logs.setup(log_format, log_level)
    if ctx.invoked_subcommand is not None:
        # `reconcile --sku S --json verify` means what `reconcile verify --sku S --json` does.
        if do_apply:
            raise click.UsageError(f"--apply repairs; it does not go with `{ctx.invoked_subcommand}`")
        ctx.meta["reconcile.skus"], ctx.meta["reconcile.json"] = skus, as_json_output
        return
    outcome = _run(reconcile(_settings(), list(skus) or None, apply=do_apply))
    if as_json_output:
        click.echo(json.dumps(as_json(outcome.diffs, outcome.repairs, drifted=outcome.drifted), indent=2))
    else:
        click.echo(table(outcome.diffs, outcome.repairs))
    sys.exit(EXIT_DRIFT if outcome.drifted else 0)


@reconcile_group.command("verify")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable); default every SKU.")
@click.option("--accepted", type=click.File("r"), help="Order ids a client got 202 for, one per line ('-' = stdin).")
@click.option("--json", "as_json_output", is_flag=True, help="Machine-readable output.")
@click.pass_context
def verify_command(ctx: click.Context, skus: tuple[str, ...], accepted: TextIO | None, as_json_output: bool) -> None:
    """Check invariants I1–I4 on a drained pipeline: one line per SKU; exit 1 on any violation."""
    skus = (*ctx.meta.get("reconcile.skus", ()), *skus)
    as_json_output = as_json_output or ctx.meta.get("reconcile.json", False)
    try:
        ids = parse_order_ids(accepted) if accepted is not None else None
    except ReconcileError as e:
        click.echo(f"reconcile verify: {e}", err=True)
        sys.exit(EXIT_ERROR)
    report = _run(verify(_settings(), list(skus) or None, ids))
    if as_json_output:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for verdict in report.skus:
            click.echo(verdict.line())
        if report.unattributed:
            click.echo(f"{report.unattributed} accepted order id(s) found nowhere (lost, SKU unknown)")
    sys.exit(0 if report.ok else EXIT_DRIFT)
