"""`flashgate stack …`: run the local Redis, PostgreSQL and Kafka under a state folder."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

import click

from ops.stack import settings as stack_settings
from ops.stack.errors import StackError
from ops.stack.kafka_service import ensure_jars
from ops.stack.stack import Stack

F = Callable[..., Any]


def stack_options(fn: F) -> F:
    """The state folder and port options every stack command shares."""
    for name in reversed(list(stack_settings.DEFAULT_PORTS)):
        fn = click.option(
            stack_settings.PORT_OPTION[name],
            name,
            type=int,
            default=None,
            help=f"Port (env {stack_settings.PORT_ENV[name]}; default {stack_settings.DEFAULT_PORTS[name]}).",
        )(fn)
    return click.option(
        "--state-dir",
        default=None,
        help=f"Folder for data, logs and pids (env FLASHGATE_STACK_DIR; default {stack_settings.DEFAULT_STATE_DIR}).",
    )(fn)


def build_stack(
    state_dir: str | None,
    ports: dict[str, int | None],
    free_ports: bool = False,
    prometheus: dict[str, int | None] | None = None,
    with_prometheus: bool = False,
    kafka_brokers: int | None = None,
    kafka_fast_start: bool = False,
    redis_cluster: bool = False,
) -> Stack:
    try:
        settings = stack_settings.resolve(
            state_dir, ports, free_ports=free_ports, prometheus=prometheus, with_prometheus=with_prometheus,
            kafka_brokers=kafka_brokers, kafka_fast_start=kafka_fast_start, redis_cluster=redis_cluster,
        )  # fmt: skip
        return Stack(settings)
    except StackError as e:
        raise click.ClickException(str(e)) from e


def run(action: Callable[[], Any]) -> Any:
    """Run a launcher action; a StackError becomes a one-line message and exit code 1."""
    try:
        return action()
    except StackError as e:
        raise click.ClickException(str(e)) from e


@click.group("stack")
def stack_group() -> None:
    """Run the local services (Redis, PostgreSQL, Kafka) as real processes."""


@stack_group.command("up")
@stack_options
@click.option("--free-ports", is_flag=True, help="Pick unused ports for any port not given or saved.")
@click.option(
    "--kafka-brokers",
    type=int,
    help="KRaft nodes, each controller and broker: 1 (default) or 3 (replication 3, min.insync.replicas 2).",
)
@click.option(
    "--kafka-fast-start",
    is_flag=True,
    help="Test stacks: Kafka JVMs with the C1 compiler only (half the CPU to start, less throughput).",
)
@click.option(
    "--redis-cluster",
    is_flag=True,
    help="A Redis Cluster of 3 primaries and 3 replicas (redis-p1..p3, redis-r1..r3) instead of one Redis.",
)
@click.option("--with-prometheus", is_flag=True, help="Also run Prometheus (scrapes gate, worker, monitor; alerts).")
@click.option("--gate-port", type=int, help="Port of the gate Prometheus scrapes (default 8000).")
@click.option("--worker-metrics-port", type=int, help="Worker's --metrics-port Prometheus scrapes (default 9101).")
@click.option("--monitor-port", type=int, help="Port of `flashgate monitor` Prometheus scrapes (default 9102).")
@click.option("--prometheus-interval-s", type=int, help="Scrape and rule evaluation interval (default 15).")
@click.option(
    "--prometheus-alert-for-s",
    type=int,
    help="Tests/demos only: every alert's `for:` becomes this many seconds (default 0: the rules' own).",
)
def up(
    state_dir: str | None,
    free_ports: bool,
    kafka_brokers: int | None,
    kafka_fast_start: bool,
    redis_cluster: bool,
    with_prometheus: bool,
    gate_port: int | None,
    worker_metrics_port: int | None,
    monitor_port: int | None,
    prometheus_interval_s: int | None,
    prometheus_alert_for_s: int | None,
    **ports: int | None,
) -> None:
    """Start all services (idempotent) and wait until each answers."""
    prometheus = {
        "gate_port": gate_port,
        "worker_metrics_port": worker_metrics_port,
        "monitor_port": monitor_port,
        "prometheus_interval_s": prometheus_interval_s,
        "prometheus_alert_for_s": prometheus_alert_for_s,
    }
    stack = build_stack(
        state_dir, ports, free_ports, prometheus, with_prometheus, kafka_brokers, kafka_fast_start, redis_cluster
    )
    took = run(stack.up)
    click.echo(f"stack up in {took:.1f} s ({stack.settings.state_dir})")
    if stack.redis_cluster_s is not None:
        click.echo(f"redis cluster ok ({stack.redis_cluster_s:.1f} s of it)")
    if stack.settings.with_prometheus:
        click.echo(f"prometheus: http://127.0.0.1:{stack.settings.prometheus_port}")


@stack_group.command("down")
@stack_options
def down(state_dir: str | None, **ports: int | None) -> None:
    """Stop every service; no process of the stack is left."""
    run(build_stack(state_dir, ports).down)
    click.echo("stack down")


@stack_group.command("status")
@stack_options
def status(state_dir: str | None, **ports: int | None) -> None:
    """Show each service with pid, port, health and role in its cluster; exit 1 unless all are healthy.

    ROLE, for a node of a Redis Cluster: `primary <slot ranges>` or `replica of <node>`; for a node of a
    Kafka cluster (each is controller and broker): `active controller` on the quorum leader, else
    `controller`; `-` for a single node or a node that does not answer.
    """
    rows = run(build_stack(state_dir, ports).status)
    click.echo(f"{'SERVICE':<10} {'STATE':<10} {'PID':>8} {'PORT':>6}  ROLE")
    for r in rows:
        click.echo(f"{r.name:<10} {r.state:<10} {r.pid or '-':>8} {r.port:>6}  {r.role or '-'}")
    if not all(r.healthy for r in rows):
        raise SystemExit(1)


@stack_group.command("env")
@stack_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of shell assignments.")
def env(state_dir: str | None, as_json: bool, **ports: int | None) -> None:
    """Print REDIS_URL, DATABASE_URL and KAFKA_BOOTSTRAP (use with `eval "$(flashgate stack env)"`)."""
    values = build_stack(state_dir, ports).settings.connection_env()
    if as_json:
        click.echo(json.dumps(values))
        return
    for key, value in values.items():
        click.echo(f"export {key}={shlex.quote(value)}")


def _one_service_command(verb: str, doc: str) -> None:
    @stack_group.command(verb, help=doc)
    @click.argument("service")
    @stack_options
    def command(service: str, state_dir: str | None, **ports: int | None) -> None:
        stack = build_stack(state_dir, ports)
        if service not in stack.names:  # a usage error (exit 2), like an unknown option
            raise click.BadParameter(f"{service!r}; choose one of {', '.join(stack.names)}", param_hint="SERVICE")
        run(lambda: getattr(stack, verb)(service))
        click.echo(f"{service} {verb}{'ed' if verb != 'stop' else 'ped'}")


_NODES = (
    "SERVICE: redis (redis-p1 … redis-r3 for one node of a Redis Cluster, redis for all), postgres, "
    "kafka (kafka-1 … kafka-N for one node of a cluster, kafka for all), prometheus."
)
_one_service_command("start", f"Start one service and wait until it answers. {_NODES}")
_one_service_command("stop", f"Stop one service gracefully (it flushes its data). {_NODES}")
_one_service_command("kill", f"SIGKILL one service and its children, as a crash would. {_NODES}")


@stack_group.command("fetch")
def fetch() -> None:
    """Download the Kafka broker jars with Maven (done by `up` when missing)."""
    click.echo(f"kafka jars in {run(ensure_jars)}")
