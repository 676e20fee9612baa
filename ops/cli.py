"""The `flashgate` command: one entry point, one subcommand group per concern."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import click

from bench.cli import bench_group
from gate.serve import gate_command, relay_command
from ops import migrate
from ops.monitor.main import monitor_command
from ops.order import order_group
from ops.sale.cli import sale_group
from ops.stack.cli import stack_group
from ops.topics.cli import topics_group
from reconcile.cli import reconcile_group
from worker.cli import worker_command


@click.group()
@click.version_option(package_name="flashgate", message="%(prog)s %(version)s")
def cli() -> None:
    """flashgate: a flash-sale order gate (gate, worker, on-call tools, local stack)."""


cli.add_command(stack_group)
cli.add_command(topics_group)
cli.add_command(gate_command)
cli.add_command(relay_command)
cli.add_command(worker_command)
cli.add_command(monitor_command)
cli.add_command(sale_group)
cli.add_command(reconcile_group)
cli.add_command(order_group)
cli.add_command(bench_group)


@cli.command("migrate")
@click.option("--database-url", envvar="DATABASE_URL", required=True, help="PostgreSQL URL (env DATABASE_URL).")
@click.option(
    "--sql-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of NNN_description.sql files (default: the migrations shipped in the package).",
)
def migrate_command(database_url: str, sql_dir: Path | None) -> None:
    """Apply pending SQL migrations (each once, in order); exit 1 if none are found."""
    try:
        applied = asyncio.run(migrate.apply_all(database_url, sql_dir or migrate.SQL_DIR))
    except (migrate.MigrationError, asyncpg.PostgresError, OSError) as e:
        raise click.ClickException(f"migrate: {e}") from e
    click.echo(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")


def main() -> None:
    cli()
