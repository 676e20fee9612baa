"""The `flashgate` command: one entry point, one subcommand group per concern."""

from __future__ import annotations

import click

from ops.stack.cli import stack_group


@click.group()
def cli() -> None:
    """flashgate: a flash-sale order gate (gate, worker, on-call tools, local stack)."""


cli.add_command(stack_group)


def main() -> None:
    cli()
