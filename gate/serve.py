"""`flashgate gate` (N server processes of the app) and `flashgate relay` (the relay alone)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from flashgate import logs
from flashgate.settings import ConfigError, lookup
from gate.limits import FD_RESERVE, ensure_nofile
from gate.metrics import MULTIPROC_ENV
from gate.settings import GateSettings

APP_FACTORY = "gate.app:app_from_env"
NO_UVICORN = "--server uvicorn needs the uvicorn extra: pip install 'flashgate[uvicorn]'"
log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _settings(env: dict[str, str] | None = None) -> GateSettings:
    try:
        return GateSettings.from_env(env)
    except (ConfigError, OSError) as e:
        raise click.ClickException(str(e)) from e


def _old_envvar(old: str) -> Any:
    """A click callback: an option left to its default reads its deprecated variable `old` (warned once);
    set together with the option's variable to another value, it is an error (flashgate.settings.lookup)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
            return value
        try:
            raw = lookup(os.environ, str(param.envvar), (old,))
        except ConfigError as e:
            raise click.BadParameter(str(e), ctx, param) from e
        return value if raw is None else param.type_cast_value(ctx, raw)

    return callback


def _env_option(*decls: str, envvar: str, old: str, **kwargs: Any) -> Callable[[F], F]:
    """A gate option that also reads `envvar` (shown in --help) and, deprecated, `old`."""
    return click.option(*decls, envvar=envvar, show_envvar=True, show_default=True, callback=_old_envvar(old), **kwargs)


@click.command("gate")
@_env_option("--host", default="127.0.0.1", envvar="FLASHGATE_GATE_HOST", old="FLASHGATE_HOST", help="Listen address.")
@_env_option("--port", default=8000, envvar="FLASHGATE_GATE_PORT", old="FLASHGATE_PORT", help="Listen port.")
@_env_option(
    "--workers", "-w", default=2, envvar="FLASHGATE_GATE_WORKERS", old="FLASHGATE_WORKERS", help="Server processes."
)
@_env_option(
    "--server",
    type=click.Choice(["granian", "uvicorn"]),
    default="granian",
    envvar="FLASHGATE_GATE_SERVER",
    old="FLASHGATE_SERVER",
    help="ASGI server (granian measured faster here; see docs/benchmarks.md).",
)
@click.option(
    "--graceful-timeout", default=30, show_default=True, help="Seconds to finish in-flight requests on SIGTERM."
)
@logs.log_options()
def gate_command(
    host: str, port: int, workers: int, server: str, graceful_timeout: int, log_format: str, log_level: str
) -> None:
    """Serve the gate's HTTP contract. Settings: REDIS_URL, KAFKA_BOOTSTRAP, FLASHGATE_TOPIC,
    FLASHGATE_IDEM_TTL_S, FLASHGATE_GATE_* and FLASHGATE_KAFKA_* (docs/configuration.md).

    SIGTERM: stop accepting, finish in-flight requests, flush the Kafka producer, exit.
    """
    if server == "uvicorn" and importlib.util.find_spec("uvicorn") is None:
        raise click.ClickException(NO_UVICORN)  # before anything is set up
    settings = _settings()  # fail here, once, rather than in every worker
    logs.setup(log_format, log_level)
    # The server processes set up their logging from these (gate/app.py `app_from_env`).
    os.environ[logs.FORMAT_ENV], os.environ[logs.LEVEL_ENV] = log_format, log_level.upper()
    try:
        nofile = ensure_nofile(settings)  # before the server processes start: they inherit it
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    log.info(
        "serving with %s: %d connections per process, header read timeout %d ms, head limit %d bytes, "
        "listen backlog %d, open files %d per process (%d needed)",
        server, settings.max_connections, settings.header_read_timeout_ms, settings.head_limit_bytes,
        settings.listen_backlog, nofile, settings.max_connections + FD_RESERVE,
    )  # fmt: skip
    # A fresh folder per run, so /metrics sums these server processes and no stale ones.
    metrics_dir = tempfile.mkdtemp(prefix="flashgate-gate-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        _serve(host, port, workers, server, graceful_timeout, settings)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(host: str, port: int, workers: int, server: str, graceful_timeout: int, settings: GateSettings) -> None:
    """Run the server processes with the connection limits of `settings` (gate/limits.py says why)."""
    if server == "uvicorn":
        import uvicorn  # present: gate_command checked

        # uvicorn (0.54, h11) starts its keep-alive timer only after a response: a socket that
        # sends nothing, or its head a byte at a time, stays open for good. It cannot keep idle
        # connections from locking buyers out (docs/http-api.md, Connection limits); granian can.
        log.warning("uvicorn never closes a connection that sends no request: use granian in production")
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            lifespan="on",
            access_log=False,
            log_level="warning",
            log_config=None,  # uvicorn's loggers propagate to ours (flashgate/logs.py)
            timeout_graceful_shutdown=graceful_timeout,
            backlog=settings.listen_backlog,
            limit_concurrency=settings.max_connections,  # per process; beyond it a text/plain 503
            timeout_keep_alive=-(-settings.header_read_timeout_ms // 1000),  # whole seconds, rounded up
            h11_max_incomplete_event_size=settings.head_limit_bytes,
        )
        return
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    Server(
        APP_FACTORY,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        factory=True,
        # HTTP/1.1 only: in `auto` mode granian waits for a silent socket's first bytes forever.
        http=HTTPModes.http1,
        backlog=settings.listen_backlog,
        backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=settings.header_read_timeout_ms,
            keep_alive=True,
            max_buffer_size=settings.head_limit_bytes,
        ),
        log_level=LogLevels.warning,
        log_dictconfig=logs.GRANIAN_LOGGING,  # granian's lines go through our handler and format
        workers_kill_timeout=graceful_timeout,
        respawn_failed_workers=True,
    ).serve()


@click.command("relay")
@logs.log_options()
def relay_command(log_format: str, log_level: str) -> None:
    """Republish stale outbox entries of every SKU to Kafka until SIGTERM (gates also relay).

    Settings as the gate's (docs/configuration.md); auth and FLASHGATE_GATE_RELAY do not apply.
    """
    # Set here, so a deprecated FLASHGATE_AUTH or FLASHGATE_RELAY left in the environment cannot disagree.
    env = {k: v for k, v in os.environ.items() if k not in ("FLASHGATE_AUTH", "FLASHGATE_RELAY")}
    settings = _settings({**env, "FLASHGATE_GATE_AUTH": "off", "FLASHGATE_GATE_RELAY": "on"})
    logs.setup(log_format, log_level)
    asyncio.run(_relay(settings))


async def _relay(settings: GateSettings) -> None:
    from gate.core import Gate  # here, so `flashgate stack …` does not pay for Kafka/Redis imports

    gate = Gate(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gate.start()
    log.info("relay running (stale after %d ms)", settings.relay_stale_ms)
    await stop.wait()
    await gate.stop()
