"""The `flashgate` command: one entry point, one subcommand group per concern.

Each subcommand's module is imported only when that subcommand runs (or a listing needs its
help): `flashgate stack status` does not pay for Redis, Litestar and asyncpg.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import click

# name → "module:attribute" of its click command
SUBCOMMANDS = {
    "stack": "ops.stack.cli:stack_group",
    "topics": "ops.topics.cli:topics_group",
    "gate": "gate.serve:gate_command",
    "relay": "gate.serve:relay_command",
    "worker": "worker.cli:worker_command",
    "monitor": "ops.monitor.main:monitor_command",
    "sale": "ops.sale.cli:sale_group",
    "reconcile": "reconcile.cli:reconcile_group",
    "order": "ops.order:order_group",
    "bench": "bench.cli:bench_group",
}


class LazyGroup(click.Group):
    """A group whose subcommands in `SUBCOMMANDS` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="flashgate", message="%(prog)s %(version)s")
def cli() -> None:
    """flashgate: a flash-sale order gate (gate, worker, on-call tools, local stack)."""


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
    import asyncpg

    from ops import migrate

    try:
        applied = asyncio.run(migrate.apply_all(database_url, sql_dir or migrate.SQL_DIR))
    except (migrate.MigrationError, asyncpg.PostgresError, OSError) as e:
        raise click.ClickException(f"migrate: {e}") from e
    click.echo(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")


def main() -> None:
    cli()
