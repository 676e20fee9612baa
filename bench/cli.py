"""`flashgate bench …`: flash sale, A/B of two checkouts or of their admit.lua, soak run, worker drain."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise click.ClickException(f'{name} is not set (eval "$(flashgate stack env)")')
    return value


F = TypeVar("F", bound=Callable[..., Any])

# Options several commands share, written once.
GATE_URL = click.option(
    "--gate-url", default="http://127.0.0.1:8000", show_default=True, help="The running gate (auth off)."
)
OUT_DIR = click.option("--out", "out_dir", default="bench/results", show_default=True, type=click.Path(path_type=Path))
CHECKOUT = click.Path(exists=True, file_okay=False, path_type=Path)


def worker_pids_option(purpose: str) -> Callable[[F], F]:
    """--worker-pid (repeatable): the worker processes `purpose`, by default every `flashgate worker` of our Kafka."""
    return click.option(
        "--worker-pid",
        "worker_pids",
        type=int,
        multiple=True,
        help=f"The worker processes {purpose} (default: every `flashgate worker` on KAFKA_BOOTSTRAP).",
    )


# What the `bench` extra brings; the runtime wheel does without them.
EXTRA_MODULES = ("httpx", "matplotlib", "rich")


@click.group("bench")
def bench_group() -> None:
    """Benchmarks: measurements to reproduce, not pass/fail tests (needs the `bench` extra)."""
    missing = []
    for module in EXTRA_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise click.ClickException(
            f"flashgate bench needs the bench extra (missing {', '.join(missing)}): pip install 'flashgate[bench]'"
        )


@bench_group.command("flash-sale")
@GATE_URL
@click.option("--stock", default=10_000, show_default=True, help="Units on sale.")
@click.option("--duration", default=10, show_default=True, help="Seconds of load (wrk -d).")
@click.option("--warmup", default=0, show_default=True, help="Seconds of the same load first, not measured.")
@click.option("--connections", default=128, show_default=True, help="Concurrent keep-alive connections (wrk -c).")
@click.option("--threads", default=1, show_default=True, help="wrk threads.")
@click.option("--users", default=100_000, show_default=True, help="Distinct buyers (X-User-Id).")
@click.option("--per-user-limit", default=0, show_default=True, help="Per-buyer cap of the sale (0: none).")
@click.option("--workers", default=2, show_default=True, help="Process count of the gate; the bare server uses it.")
@click.option("--bare/--no-bare", default=True, show_default=True, help="Also load a bare endpoint for the ratio.")
@click.option("--drain-timeout", default=120.0, show_default=True, help="Seconds to wait for the worker to drain.")
@worker_pids_option("for the CPU budget")
@OUT_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the raw result as JSON instead of the summary.")
def flash_sale_command(
    gate_url: str,
    stock: int,
    duration: int,
    warmup: int,
    connections: int,
    threads: int,
    users: int,
    per_user_limit: int,
    workers: int,
    bare: bool,
    drain_timeout: float,
    worker_pids: tuple[int, ...],
    out_dir: Path,
    as_json: bool,
) -> None:
    """One flash sale against the running gate and worker, then drain, invariant check and bare baseline.

    Needs REDIS_URL and DATABASE_URL (the gate's), the gate served with FLASHGATE_GATE_AUTH=off, a
    worker running, and wrk; KAFKA_BOOTSTRAP finds the broker for the CPU budget. Exit 1 if the
    invariant check fails.
    """
    from bench.flash_sale import BenchError, FlashSaleSettings, flash_sale, report_lines
    from bench.served import ServeError
    from bench.wrk import WrkError

    if min(stock, duration, connections, threads, users, workers) < 1 or connections < threads or warmup < 0:
        raise click.ClickException("stock, duration, users, workers >= 1, connections >= threads >= 1, warmup >= 0")
    settings = FlashSaleSettings(
        gate_url=gate_url.rstrip("/"),
        redis_url=_env("REDIS_URL"),
        database_url=_env("DATABASE_URL"),
        stock=stock,
        duration_s=duration,
        warmup_s=warmup,
        connections=connections,
        threads=threads,
        users=users,
        per_user_limit=per_user_limit,
        workers=workers,
        bare=bare,
        drain_timeout_s=drain_timeout,
        out_dir=out_dir,
        kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP") or None,
        worker_pids=worker_pids,
    )
    try:
        result = flash_sale(settings)
    except (BenchError, WrkError, ServeError, OSError) as e:
        raise click.ClickException(f"bench flash-sale: {e}") from e
    click.echo(json.dumps(result, indent=1, default=str) if as_json else "\n".join(report_lines(result)))
    if not result["verify"]["ok"]:
        raise SystemExit(1)


@bench_group.command("ab")
@click.option("--a", "a", required=True, type=CHECKOUT, help="Checkout A.")
@click.option("--b", "b", required=True, type=CHECKOUT, help="Checkout B.")
@click.option("--rounds", default=3, show_default=True, help="Rounds of A then B.")
@click.option("--order", type=click.Choice(["ab", "alternate"]), default="ab", show_default=True,
              help="A then B in each round, or alternate (A B, B A, …): a round's second run has an edge.")  # fmt: skip
@click.option("--stock", default=200_000, show_default=True, help="Units on sale (enough to sell all window long).")
@click.option("--duration", default=10, show_default=True, help="Seconds of load per run (wrk -d).")
@click.option("--warmup", default=3, show_default=True,
              help="Seconds of the same load before each measured run (a fresh gate, a broker's JIT).")  # fmt: skip
@click.option("--connections", default=128, show_default=True, help="Concurrent keep-alive connections (wrk -c).")
@click.option("--threads", default=1, show_default=True, help="wrk threads.")
@click.option("--users", default=100_000, show_default=True, help="Distinct buyers (X-User-Id).")
@click.option("--workers", default=2, show_default=True, help="Gate processes (flashgate gate --workers).")
@click.option("--b-workers", type=int, default=None, help="Gate processes of B only (default: --workers).")
@click.option("--bare/--no-bare", default=False, show_default=True, help="Also load a bare endpoint in every run.")
@click.option("--lock", default="/tmp/flashgate-bench.lock", show_default=True,
              help="Bench lock held per variant (flock); '' for none, when you hold it yourself.")  # fmt: skip
@OUT_DIR
@click.option("--rate", type=int, default=None,
              help="Open loop: buyers arriving per second (vegeta) instead of wrk's --connections.")  # fmt: skip
@click.option("--a-env", multiple=True, metavar="NAME=VALUE", help="Extra environment of A's gate and worker.")
@click.option("--b-env", multiple=True, metavar="NAME=VALUE", help="Extra environment of B's gate and worker.")
def ab_command(
    a: Path,
    b: Path,
    rounds: int,
    order: str,
    stock: int,
    duration: int,
    warmup: int,
    connections: int,
    threads: int,
    users: int,
    workers: int,
    b_workers: int | None,
    bare: bool,
    lock: str,
    out_dir: Path,
    rate: int | None,
    a_env: tuple[str, ...],
    b_env: tuple[str, ...],
) -> None:
    """Interleaved A/B of two checkouts: per round, A then B each serve a flash sale with their own code.

    Needs REDIS_URL, DATABASE_URL and KAFKA_BOOTSTRAP (`eval "$(flashgate stack env)"`) and wrk (or
    vegeta, built by `make bootstrap`, with --rate);
    no gate or worker of your own may consume the stack's `orders` topic meanwhile. Prints medians,
    B/A per round and the median B/A; raw results in bench/results/ab-<timestamp>.json.
    """
    from bench.ab import AbError, AbSettings, check_checkout, lines, run_ab
    from bench.flash_sale import BenchError
    from bench.open_loop import OpenLoopError
    from bench.served import ServeError
    from bench.wrk import WrkError

    b_workers = workers if b_workers is None else b_workers
    if min(rounds, stock, duration, connections, threads, users, workers, b_workers) < 1 or connections < threads:
        raise click.ClickException(
            "rounds, stock, duration, users, workers, b-workers >= 1 and connections >= threads >= 1"
        )
    if warmup < 0:
        raise click.ClickException("warmup >= 0")
    if rate is not None and rate < 1:
        raise click.ClickException("rate >= 1")
    for name in ("REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP"):
        _env(name)
    a_pairs, b_pairs = _pairs(a_env), _pairs(b_env)
    try:
        settings = AbSettings(a=check_checkout(a), b=check_checkout(b), rounds=rounds, stock=stock,
                              duration_s=duration, warmup_s=warmup, connections=connections, threads=threads,
                              users=users, workers=workers, b_workers=b_workers, bare=bare,
                              lock=Path(lock) if lock else None,
                              out_dir=out_dir, a_env=a_pairs, b_env=b_pairs, order=order, rate=rate)  # fmt: skip
        record = run_ab(settings)
    except (AbError, BenchError, WrkError, OpenLoopError, ServeError, OSError) as e:
        raise click.ClickException(f"bench ab: {e}") from e
    click.echo("\n".join(lines(record)))


def _pairs(assignments: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """NAME=VALUE options → pairs; a one-line error for anything else."""
    pairs = []
    for text in assignments:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise click.ClickException(f"bench ab: expected NAME=VALUE, not {text!r}")
        pairs.append((name, value))
    return tuple(pairs)


@bench_group.command("script-ab")
@click.option("--a", "a", required=True, type=CHECKOUT, help="Checkout A (its flashgate/lua).")
@click.option("--b", "b", required=True, type=CHECKOUT, help="Checkout B (its flashgate/lua).")
@click.option("--batch", "batches", type=int, multiple=True, default=(16, 64), show_default=True,
              help="Orders per admit.lua call (repeatable).")  # fmt: skip
@click.option("--calls", default=1000, show_default=True, help="Measured calls per batch size and run.")
@click.option("--callers", default=4, show_default=True, help="Concurrent callers.")
@click.option("--rounds", default=3, show_default=True, help="Rounds of A and B, alternating which goes first.")
@click.option("--sale", type=click.Choice(["open", "limited"]), default="open", show_default=True,
              help="open: no rate limit or cap; limited: every order also runs GCRA and the per-user cap.")  # fmt: skip
@click.option("--lock", default="/tmp/flashgate-bench.lock", show_default=True,
              help="Bench lock held for the whole run (flock); '' for none.")  # fmt: skip
@OUT_DIR
def script_ab_command(
    a: Path,
    b: Path,
    batches: tuple[int, ...],
    calls: int,
    callers: int,
    rounds: int,
    sale: str,
    lock: str,
    out_dir: Path,
) -> None:
    """Interleaved A/B of two checkouts' admit.lua alone: Redis CPU and evalsha µs per admission.

    Needs REDIS_URL (`eval "$(flashgate stack env)"`), a Redis nothing else loads meanwhile: its
    CPU is read from INFO. Both variants call through this checkout's client; only the scripts
    differ. Raw results in bench/results/script-ab-<timestamp>.json.
    """
    from redis.exceptions import RedisError

    from bench.script_ab import ScriptAbError, ScriptAbSettings, lines, run_script_ab

    if min(rounds, calls, callers, *batches) < 1 or calls < callers:
        raise click.ClickException("bench script-ab: rounds, batch >= 1 and calls >= callers >= 1")
    settings = ScriptAbSettings(a=a, b=b, redis_url=_env("REDIS_URL"), batches=batches, calls=calls,
                                callers=callers, rounds=rounds, sale=sale, lock=Path(lock) if lock else None,
                                out_dir=out_dir)  # fmt: skip
    try:
        record = run_script_ab(settings)
    except (ScriptAbError, RedisError, OSError) as e:
        raise click.ClickException(f"bench script-ab: {e}") from e
    click.echo("\n".join(lines(record, (str(a.resolve()), str(b.resolve())))))


@bench_group.command("soak")
@GATE_URL
@click.option("--rate", default=200.0, show_default=True, help="Orders per second, open-loop.")
@click.option("--duration", default=1800, show_default=True, help="Seconds of load.")
@click.option("--sample-every", default=60, show_default=True, help="Seconds between samples.")
@click.option("--connections", default=32, show_default=True, help="Keep-alive connections at most.")
@click.option("--drain-timeout", default=300.0, show_default=True, help="Seconds to wait for the worker to drain.")
@click.option("--rss-growth-mib", default=8.0, show_default=True, help="Verdict: RSS growth over the second half.")
@worker_pids_option("to watch")
@OUT_DIR
def soak_command(
    gate_url: str,
    rate: float,
    duration: int,
    sample_every: int,
    connections: int,
    drain_timeout: float,
    rss_growth_mib: float,
    worker_pids: tuple[int, ...],
    out_dir: Path,
) -> None:
    """A steady open-loop rate for a long time: RSS of every gate and worker process, keyspace, outbox, verdict.

    Needs REDIS_URL and DATABASE_URL (the gate's) and KAFKA_BOOTSTRAP (to find the workers), the gate
    served with FLASHGATE_GATE_AUTH=off and a short FLASHGATE_IDEM_TTL_S (at most half the duration, e.g.
    300), and a worker running. Exit 1 if the verdict fails (bench/soak_figures.py says why each limit).
    """
    from bench.flash_sale import BenchError
    from bench.soak import SoakSettings, soak
    from bench.soak_figures import Limits, report_lines

    if min(rate, duration, sample_every, connections) <= 0 or sample_every > duration:
        raise click.ClickException("rate, duration, sample-every, connections > 0 and sample-every <= duration")
    settings = SoakSettings(
        gate_url=gate_url.rstrip("/"),
        redis_url=_env("REDIS_URL"),
        database_url=_env("DATABASE_URL"),
        kafka_bootstrap=_env("KAFKA_BOOTSTRAP"),
        rate_per_s=rate,
        duration_s=duration,
        sample_every_s=sample_every,
        connections=connections,
        drain_timeout_s=drain_timeout,
        worker_pids=worker_pids,
        limits=Limits(rss_growth_mib=rss_growth_mib),
        out_dir=out_dir,
    )
    try:
        result = soak(settings)
    except (BenchError, OSError) as e:
        raise click.ClickException(f"bench soak: {e}") from e
    click.echo("\n".join(report_lines(result)))
    if not result["passed"]:
        raise SystemExit(1)


@bench_group.command("drain")
@click.option("--orders", default=100_000, show_default=True, help="Orders pre-filled into a fresh topic.")
@click.option("--partitions", default=6, show_default=True)
@click.option("--workers", default=1, show_default=True, help="flashgate worker processes.")
@click.option("--batch-max-rows", default=2000, show_default=True)
@click.option(
    "--orders-per-message",
    default=1,
    show_default=True,
    help="1: event version 1, one order per message; N > 1: version-2 messages of N orders, as a gate sends them.",
)
def drain_command(orders: int, partitions: int, workers: int, batch_max_rows: int, orders_per_message: int) -> None:
    """Time workers persisting N pre-filled orders into PostgreSQL (KAFKA_BOOTSTRAP, DATABASE_URL)."""
    from bench.drain import drain, report
    from flashgate.events import MAX_BATCH_ORDERS

    if min(orders, partitions, workers, batch_max_rows, orders_per_message) < 1:
        raise click.ClickException(
            "--orders, --partitions, --workers, --batch-max-rows and --orders-per-message must be >= 1"
        )
    if orders_per_message > MAX_BATCH_ORDERS:
        raise click.ClickException(f"--orders-per-message must be <= {MAX_BATCH_ORDERS} (one admission call at most)")
    result = asyncio.run(drain(_env("KAFKA_BOOTSTRAP"), _env("DATABASE_URL"), orders=orders,
                               partitions=partitions, workers=workers, batch_max_rows=batch_max_rows,
                               per_message=orders_per_message))  # fmt: skip
    click.echo("\n".join(report(result)))


@bench_group.command("app")
@click.option("--sku", required=True, help="A SKU on sale with stock for every order (flashgate sale create).")
@click.option("--orders", default=8000, show_default=True, help="Measured orders per run (after 500 warm-up ones).")
@click.option(
    "--concurrency", "concurrencies", type=int, multiple=True, help="Orders in flight (repeatable).  [default: 128]"
)
@click.option("--rounds", default=1, show_default=True, help="Runs of every concurrency, in turn.")
def app_command(sku: str, orders: int, concurrencies: tuple[int, ...], rounds: int) -> None:
    """The gate app alone, called through ASGI in process: CPU per order without a server (bench/app_only.py).

    Needs REDIS_URL and KAFKA_BOOTSTRAP, and the checkout to measure on PYTHONPATH; auth is off in the app.
    """
    from bench.app_only import AppBenchError, sweep

    levels = list(concurrencies) or [128]
    if min(orders, rounds, *levels) < 1:
        raise click.ClickException("orders, rounds and concurrency must be >= 1")
    for name in ("REDIS_URL", "KAFKA_BOOTSTRAP"):
        _env(name)
    try:
        for run in sweep(sku, orders, levels, rounds):
            click.echo(run.line())
    except AppBenchError as e:
        raise click.ClickException(f"bench app: {e}") from e


@bench_group.command("open-loop")
@GATE_URL
@click.option("--rate", type=int, required=True, help="Buyers arriving per second (constant, open loop).")
@click.option("--duration", default=10, show_default=True, help="Seconds of arrivals.")
@click.option("--sku", help="Sell this SKU (on sale, with stock); default: a fresh sale of --stock units.")
@click.option("--stock", default=1_000_000, show_default=True, help="Units of the fresh sale.")
@click.option("--users", default=100_000, show_default=True, help="Distinct buyers (X-User-Id).")
@click.option("--max-workers", default=4096, show_default=True, help="vegeta's cap on requests in flight.")
@click.option("--max-p99-ms", type=float, help="Fail (exit 1) when the corrected p99 is above this.")
@click.option("--min-accepted-per-s", type=float, help="Fail (exit 1) when fewer 202s per second arrive.")
@OUT_DIR
def open_loop_command(
    gate_url: str,
    rate: int,
    duration: int,
    sku: str | None,
    stock: int,
    users: int,
    max_workers: int,
    max_p99_ms: float | None,
    min_accepted_per_s: float | None,
    out_dir: Path,
) -> None:
    """Open-loop load at a constant arrival rate (vegeta), latency from when each request was due, thresholds.

    The gate must run with FLASHGATE_GATE_AUTH=off (buyers are X-User-Id). A fresh sale needs
    DATABASE_URL and REDIS_URL (`flashgate sale create`). Exit 1 when a threshold is missed.
    """
    from bench.flash_sale import BenchError, create_sale
    from bench.open_loop import OpenLoopError, OpenLoopSettings, report_lines, run_open_loop, save

    if min(rate, duration, stock, users, max_workers) < 1:
        raise click.ClickException("rate, duration, stock, users and max-workers must be >= 1")
    try:
        if sku is None:
            for name in ("DATABASE_URL", "REDIS_URL"):
                _env(name)
            sku = f"ol-{os.urandom(5).hex()}"
            create_sale(sku, stock)
        settings = OpenLoopSettings(gate_url=gate_url, sku=sku, rate=rate, duration_s=duration, users=users,
                                    max_workers=max_workers, max_p99_ms=max_p99_ms,
                                    min_accepted_per_s=min_accepted_per_s)  # fmt: skip
        result = run_open_loop(settings, progress=click.echo)
    except (OpenLoopError, BenchError, OSError) as e:
        raise click.ClickException(f"bench open-loop: {e}") from e
    click.echo("\n".join(report_lines(result)))
    click.echo(f"raw: {save(result, out_dir)}")
    if result["missed"]:
        raise SystemExit(1)
