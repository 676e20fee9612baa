"""The monitor's loop and the `flashgate monitor` command: check Kafka and Redis every interval.

With DATABASE_URL set, the reconciler's dry run (ops/monitor/drift.py) runs as `drift_check`
every FLASHGATE_MONITOR_DRIFT_INTERVAL_MS; its failures count as source `reconcile`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping

import click
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from flashgate import logs
from flashgate.redis_url import connect
from flashgate.settings import ConfigError, option_help
from ops.monitor.drift import ReconcilerDrift
from ops.monitor.errors import SourceUnavailable
from ops.monitor.lag import GroupLag
from ops.monitor.metrics import MonitorMetrics
from ops.monitor.outbox import OutboxProbe
from ops.monitor.settings import DEFAULT_PORT, MonitorSettings
from reconcile.settings import ReconcileSettings

log = logging.getLogger("flashgate.monitor")
DriftCheck = Callable[[], Awaitable[Mapping[str, int]]]


class Monitor:
    """`await check_once()` refreshes every gauge; `run(stop)` does it every interval until `stop`."""

    def __init__(
        self,
        settings: MonitorSettings,
        metrics: MonitorMetrics,
        *,
        lag: GroupLag,
        outbox: OutboxProbe,
        drift_check: DriftCheck | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._lag = lag
        self._outbox = outbox
        self._drift_check = drift_check
        self._failing: set[str] = set()

    async def check_once(self) -> None:
        await asyncio.gather(self.check_lag(), self.check_outbox(), self.check_drift())

    async def check_lag(self) -> None:
        try:
            lag = await asyncio.to_thread(self._lag.read)
        except SourceUnavailable as e:
            self._failed("kafka", "lag", e)
            return
        self.metrics.set_lag(self._lag.group, self._lag.topic, lag)
        self._ok("kafka")

    async def check_outbox(self) -> None:
        try:
            state = await self._outbox.read()
        except SourceUnavailable as e:
            self._failed("redis", "outbox", e)
            return
        self.metrics.set_outbox({s: o.entries for s, o in state.items()}, {s: o.oldest_age_s for s, o in state.items()})
        self._ok("redis")

    async def check_drift(self) -> None:
        """The reconciler's periodic drift check plugs in here (`drift_check`); nothing to do without one."""
        if self._drift_check is None:
            return
        try:
            drift = await self._drift_check()
        except SourceUnavailable as e:
            self._failed("reconcile", "drift", e)
            return
        self.metrics.set_drift(drift)
        self._ok("reconcile")

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.interval_ms / 1000)

    def _ok(self, source: str) -> None:
        self.metrics.check(source, ok=True)
        if source in self._failing:
            self._failing.discard(source)
            log.info("%s readable again", source)

    def _failed(self, source: str, family: str, e: Exception) -> None:
        # Unknown is not zero: drop the series, so alerts on them resolve and "source down" fires instead.
        self.metrics.forget(family)
        self.metrics.check(source, ok=False)
        if source not in self._failing:
            self._failing.add(source)
            log.warning("%s check failed: %s", source, e)


async def serve(settings: MonitorSettings, drift_check: DriftCheck | None = None) -> None:
    """Serve /metrics on settings.host:port and check until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_*: CPU, memory, open files of the monitor
    metrics = MonitorMetrics(registry)
    timeout_s = settings.timeout_ms / 1000
    redis = connect(
        settings.redis_url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    lag = GroupLag(
        settings.kafka_bootstrap,
        group=settings.group,
        topic=settings.topic,
        timeout_s=timeout_s,
        security=settings.kafka_security,
    )
    try:
        server, _ = start_http_server(settings.port, addr=settings.host, registry=registry)
    except OSError as e:
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {e}") from e
    log.info("monitor serving %s:%d, group %s on %s", settings.host, settings.port, settings.group, settings.topic)
    try:
        await Monitor(settings, metrics, lag=lag, outbox=OutboxProbe(redis), drift_check=drift_check).run(stop)
    finally:
        server.shutdown()
        await redis.aclose()
        log.info("monitor stopped")


def drift_check(s: MonitorSettings) -> DriftCheck | None:
    """The reconciler's dry run, when the monitor may read PostgreSQL too."""
    if not s.database_url:
        return None
    reconcile = ReconcileSettings(
        s.redis_url, s.database_url, s.kafka_bootstrap, topic=s.topic, group=s.group, kafka_security=s.kafka_security
    )
    return ReconcilerDrift(reconcile, every_s=s.drift_interval_ms / 1000)


M = MonitorSettings


@click.command("monitor")
@click.option("--port", type=int, help=option_help(M, "port", f"Serve /metrics on this port ({DEFAULT_PORT})."))
@click.option("--host", help=option_help(M, "host", "Listen address (127.0.0.1)."))
@click.option("--group", help=option_help(M, "group", "Consumer group whose lag to export (flashgate-writers)."))
@click.option("--topic", help=option_help(M, "topic", "Topic of that group (orders)."))
@click.option("--interval-ms", type=int, help=option_help(M, "interval_ms", "Check every this many ms (5000)."))
@logs.log_options()
def monitor_command(log_format: str, log_level: str, **options: object) -> None:
    """Export consumer lag, outbox backlog and reconciler drift for Prometheus (outlives gate and worker).

    Reads REDIS_URL, KAFKA_BOOTSTRAP, DATABASE_URL (drift), FLASHGATE_TOPIC, FLASHGATE_GROUP,
    FLASHGATE_MONITOR_* and FLASHGATE_KAFKA_* (docs/configuration.md); an option wins over its variable.
    """
    logs.setup(log_format, log_level)
    try:
        settings = MonitorSettings.from_env(options)
        asyncio.run(serve(settings, drift_check=drift_check(settings)))
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
