"""Prometheus metrics of the gate, counted in process and published in bulk; `/metrics` sums every gate process.

The order path only adds to plain Python tallies (`requests[(status, outcome)] += 1`,
`admission_seconds.observe(s)`): no lock, no file write per order. `publish()` copies what
accumulated into the prometheus_client metrics; the gate calls it every PUBLISH_INTERVAL_S, before
rendering `/metrics`, and at shutdown, so a scrape sees at most that much delay.

`flashgate gate` runs N server processes and points PROMETHEUS_MULTIPROC_DIR at a fresh folder
of its own, so each process writes its values to files there and any process's `/metrics`
renders the sum (live gauges only over live processes). Without the variable (tests, one
process) the metrics live in the process's own registry.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PUBLISH_INTERVAL_S = 1.0
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_COMMANDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


class GateMetrics:
    """Counts and latencies of one gate process; `render()` is the `/metrics` body.

    `multiproc_dir`: the shared folder of all gate processes (None: this process alone).
    """

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        if multiproc_dir is not None and not getattr(values.ValueClass, "_multiprocess", False):
            # The server forks its workers after prometheus_client was imported in the parent,
            # which chose the in-memory value class then; pick the file-backed one again.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        self.registry = r = CollectorRegistry()
        self._p_requests = Counter(
            "flashgate_gate_requests_total",
            "Answers to POST /v1/orders by HTTP status and outcome (order status or problem code).",
            ["status", "outcome"],
            registry=r,
        )
        self._p_admission_seconds = Histogram(
            "flashgate_gate_admission_duration_seconds",
            "Time to answer POST /v1/orders: admission in Redis, then the Kafka handoff when admitted.",
            buckets=_SECONDS,
            registry=r,
        )
        self._p_redis_roundtrip_seconds = Histogram(
            "flashgate_gate_redis_roundtrip_seconds",
            "Round trip of one Redis pipeline (the commands of one event-loop tick), failures included.",
            buckets=_SECONDS,
            registry=r,
        )
        self._p_redis_batch_commands = Histogram(
            "flashgate_gate_redis_batch_commands", "Commands per Redis pipeline.", buckets=_COMMANDS, registry=r
        )
        self._p_redis_breaker_open = Gauge(
            "flashgate_gate_redis_breaker_open",
            "1 while a process's Redis circuit breaker is open (max over live processes).",
            multiprocess_mode="livemax",
            registry=r,
        )
        self._p_redis_wait_unacked = Counter(
            "flashgate_gate_redis_wait_unacked_total",
            "WAITs after a Redis Cluster admission that no replica acknowledged in time, by primary (host:port): "
            "those admissions were on one Redis node (WAIT then pauses 5 s on that node).",
            ["node"],
            registry=r,
        )
        self._p_kafka_degraded = Gauge(
            "flashgate_gate_kafka_degraded",
            "1 while a gate process's last health check found Kafka unreachable: still ready, admitted orders "
            "wait in the outbox (max over live processes).",
            multiprocess_mode="livemax",
            registry=r,
        )
        self._p_kafka_delivery_seconds = Histogram(
            "flashgate_gate_kafka_delivery_seconds",
            "From handing a message to the producer to Kafka's delivery report (gate and relay); a message is "
            "one admission call's orders (event version 2) or one order (version 1).",
            buckets=_SECONDS,
            registry=r,
        )
        self._p_kafka_deliveries = Counter(
            "flashgate_gate_kafka_deliveries_total",
            "Kafka delivery outcomes per message: delivered, failed (report with an error), refused (producer queue).",
            ["result"],
            registry=r,
        )
        self._p_handoffs = Counter(
            "flashgate_gate_handoffs_total",
            "Admitted orders by whether Kafka had them within the delivery budget (accepted) or not (queued).",
            ["result"],
            registry=r,
        )
        self._p_relay_republished = Counter(
            "flashgate_relay_republished_total", "Outbox entries the relay handed to Kafka again.", registry=r
        )
        self._p_relay_ticks = Counter(
            "flashgate_relay_ticks_total", "Relay passes over the outboxes, by result (ok, failed).", ["result"],
            registry=r,
        )  # fmt: skip
        self._p_soldout_cache_hits = Counter(
            "flashgate_gate_soldout_cache_hits_total",
            "Requests answered from the in-process sold-out cache without an admission call.",
            registry=r,
        )
        self._p_inflight = Gauge(
            "flashgate_gate_inflight_requests",
            "Admissions in flight (sum over live processes).",
            multiprocess_mode="livesum",
            registry=r,
        )
        self._p_shed = Counter(
            "flashgate_gate_shed_requests_total",
            "Requests refused with 503 overloaded because too many admissions were in flight.",
            registry=r,
        )

        # What the hot path writes: plain tallies, published by publish().
        self.requests: Tally[tuple[str, str]] = Tally()  # (status, outcome)
        self.kafka_deliveries: Tally[str] = Tally()  # result
        self.handoffs: Tally[str] = Tally()  # result
        self.relay_ticks: Tally[str] = Tally()  # result
        self.redis_wait_unacked: Tally[str] = Tally()  # node (host:port of a cluster primary)
        self.events: Tally[str] = Tally()  # unlabelled counters: relay_republished, soldout_cache_hits, shed
        self.admission_seconds = HistogramTally(_SECONDS)
        self.redis_roundtrip_seconds = HistogramTally(_SECONDS)
        self.redis_batch_commands = HistogramTally(_COMMANDS)
        self.kafka_delivery_seconds = HistogramTally(_SECONDS)
        self.inflight = 0  # gauge: admissions in flight in this process
        self.breaker_open = False  # gauge: this process's Redis circuit breaker
        self.kafka_degraded = False  # gauge: this process's last health check found Kafka unreachable

    def observe_redis(self, commands: int, seconds: float) -> None:
        """One Redis pipeline round trip (the batcher's `observe` hook)."""
        self.redis_batch_commands.observe(commands)
        self.redis_roundtrip_seconds.observe(seconds)

    def wait_unacked(self, node: str) -> None:
        """A WAIT on cluster primary `node` (host:port) that no replica acknowledged (the batcher's `unacked` hook)."""
        self.redis_wait_unacked[node] += 1

    def publish(self) -> None:
        """Copy what the tallies gathered since the last call into the Prometheus metrics; reset them."""
        for tally, metric in (
            (self.kafka_deliveries, self._p_kafka_deliveries),
            (self.handoffs, self._p_handoffs),
            (self.relay_ticks, self._p_relay_ticks),
            (self.redis_wait_unacked, self._p_redis_wait_unacked),
        ):
            for label, n in tally.items():
                metric.labels(label).inc(n)
            tally.clear()
        for (status, outcome), n in self.requests.items():
            self._p_requests.labels(status, outcome).inc(n)
        self.requests.clear()
        unlabelled = {"relay_republished": self._p_relay_republished, "soldout_cache_hits": self._p_soldout_cache_hits,
                      "shed": self._p_shed}  # fmt: skip
        for name, n in self.events.items():
            unlabelled[name].inc(n)
        self.events.clear()
        for hist, target in (
            (self.admission_seconds, self._p_admission_seconds),
            (self.redis_roundtrip_seconds, self._p_redis_roundtrip_seconds),
            (self.redis_batch_commands, self._p_redis_batch_commands),
            (self.kafka_delivery_seconds, self._p_kafka_delivery_seconds),
        ):
            hist.publish_to(target)
        self._p_inflight.set(self.inflight)
        self._p_redis_breaker_open.set(1 if self.breaker_open else 0)
        self._p_kafka_degraded.set(1 if self.kafka_degraded else 0)

    def render(self) -> bytes:
        """The exposition text: this process alone, or the sum over every process of the folder."""
        self.publish()
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        forget_dead_processes(self.multiproc_dir)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
        registry.register(ServerProcesses(self.multiproc_dir))
        return generate_latest(registry)


class ServerProcesses(Collector):
    """`process_*` of every live gate server process, labelled by `pid`, read from /proc at scrape time.

    prometheus_client's process collector covers one process and has no place in the multiprocess
    mode; the server processes of one gate are the ones with live-gauge files in the shared folder
    (every process publishes its gauges each second), and psutil reads each one's figures.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily("process_cpu_seconds", "User and system CPU time, seconds.", labels=["pid"])
        rss = GaugeMetricFamily("process_resident_memory_bytes", "Resident memory, bytes.", labels=["pid"])
        fds = GaugeMetricFamily("process_open_fds", "Open file descriptors.", labels=["pid"])
        max_fds = GaugeMetricFamily("process_max_fds", "The open file descriptor limit.", labels=["pid"])
        started = GaugeMetricFamily(
            "process_start_time_seconds", "Start time since the Unix epoch, seconds.", labels=["pid"]
        )
        for pid in live_processes(self._path):
            try:
                p = psutil.Process(pid)
                with p.oneshot():
                    times, memory, open_fds = p.cpu_times(), p.memory_info(), p.num_fds()
                    soft_limit, created = p.rlimit(psutil.RLIMIT_NOFILE)[0], p.create_time()
            except psutil.Error:  # gone since its files were listed
                continue
            label = [str(pid)]
            cpu.add_metric(label, times.user + times.system)
            rss.add_metric(label, memory.rss)
            fds.add_metric(label, open_fds)
            max_fds.add_metric(label, soft_limit)
            started.add_metric(label, created)
        yield from (cpu, rss, fds, max_fds, started)


def live_processes(path: str) -> list[int]:
    """The processes with live-gauge files in the shared folder (only live ones after `forget_dead_processes`)."""
    found = (_LIVE_GAUGE_FILE.match(f.name) for f in Path(path).glob("gauge_live*.db"))
    return sorted({int(m.group(1)) for m in found if m})


class HistogramTally:
    """Observations counted per bucket in process; `publish_to` adds them to a prometheus Histogram in bulk."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bucket whose upper bound is >= value (Prometheus buckets are "le").
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def publish_to(self, histogram: Histogram) -> None:
        """Add the counts to `histogram` (same bounds) and reset. Uses its per-bucket values directly:
        prometheus_client has no bulk observe, and one observe per order is what this avoids."""
        if not any(self.counts):
            return
        buckets = histogram._buckets  # one value per bound, +Inf last, not cumulative
        for i, n in enumerate(self.counts):
            if n:
                buckets[i].inc(n)
        histogram._sum.inc(self.total)
        self.counts = [0] * len(self.counts)
        self.total = 0.0


def forget_dead_processes(path: str) -> list[int]:
    """Drop the live-gauge files of processes that are gone (counters stay: they only add up)."""
    dead = [pid for pid in live_processes(path) if not _alive(pid)]
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return dead


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
