"""The gate's composition root: every client of one process, wired from its settings, started and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from flashgate import redis_url
from flashgate.otel import Tracing
from gate.admission import AdmissionClient
from gate.auth import Identity
from gate.breaker import Breaker
from gate.handoff import Handoff, producer_config
from gate.health import Health, Pinger, judge, probe_kafka, probe_redis
from gate.metrics import PUBLISH_INTERVAL_S, GateMetrics
from gate.orders import OrderDesk
from gate.outbox import OutboxAcker, OutboxClient, Relay
from gate.ratelimit import RatePolicies
from gate.records import OrderRecords
from gate.redis_batch import RedisBatcher, RoundTrips
from gate.redis_cluster import ClusterBatcher
from gate.scripts import Scripts
from gate.settings import GateSettings
from gate.soldout import SoldOutCache
from gate.wire import Wire

log = logging.getLogger(__name__)
# The gate checks its own health this often, so the Kafka-degraded gauge does not wait for a probe.
HEALTH_INTERVAL_S = 5.0


class Gate:
    """Built without I/O; `start()` in the lifespan connects, `stop()` drains and flushes."""

    def __init__(self, settings: GateSettings) -> None:
        self.settings = s = settings
        timeout_s = s.redis_timeout_ms / 1000
        self.metrics = GateMetrics(s.metrics_dir)
        self.redis: aioredis.Redis | None = None  # one Redis; on a cluster the ClusterBatcher has a client per node
        self.cluster: ClusterBatcher | None = None
        self.batcher: RoundTrips
        self.pinger: Pinger
        if redis_url.is_cluster(s.redis_url):
            self.batcher = self.pinger = self.cluster = ClusterBatcher(
                redis_url.parse_cluster(s.redis_url),
                lambda: Breaker(s.breaker_failures, s.breaker_cooldown_ms / 1000),
                timeout_s=timeout_s,
                observe=self.metrics.observe_redis,
                wait_ms=s.redis_wait_ms,
                unacked=self.metrics.wait_unacked,
            )
        else:
            # No client-side retry: a retried EVALSHA after a timeout could admit twice.
            self.redis = self.pinger = aioredis.Redis.from_url(
                s.redis_url,
                decode_responses=True,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
                max_connections=64,
            )
            self.batcher = RedisBatcher(
                self.redis,
                Breaker(s.breaker_failures, s.breaker_cooldown_ms / 1000),
                timeout_s=timeout_s,
                observe=self.metrics.observe_redis,
            )
        self.scripts = Scripts()
        self.admission = AdmissionClient(self.batcher, self.scripts, idem_ttl_s=s.idem_ttl_s)
        self.handoff = Handoff(
            producer_config(
                s.kafka_bootstrap,
                linger_ms=s.linger_ms,
                message_timeout_ms=s.message_timeout_ms,
                compression=s.kafka_compression,
                security=s.kafka_security,
            ),
            s.topic,
            metrics=self.metrics,
            event_version=s.event_version,
        )
        self.outbox = OutboxClient(self.batcher, self.scripts)
        self.acker = OutboxAcker(self.outbox)
        self.relay = Relay(
            self.outbox,
            self.handoff,
            self.acker,
            stale_ms=s.relay_stale_ms,
            batch=s.relay_batch,
            discover_s=s.relay_discover_ms / 1000,
            metrics=self.metrics,
        )
        self.records = OrderRecords(s.database_url, timeout_s=s.db_timeout_ms / 1000, pool_max=s.db_pool_max_size)
        self.identity = Identity(s.auth)
        self.wire = Wire(s.problem_base_url)
        self.soldout = SoldOutCache(s.soldout_cache_ms / 1000)
        self.desk = OrderDesk(
            admission=self.admission,
            handoff=self.handoff,
            acker=self.acker,
            relay=self.relay,
            records=self.records,
            soldout=self.soldout,
            policies=RatePolicies(self.batcher),
            metrics=self.metrics,
            budget_s=s.delivery_budget_ms / 1000,
            window_s=s.admit_window_ms / 1000,
        )
        self.tracing: Tracing | None = None  # OpenTelemetry export, made in start() (its thread after any fork)
        self.inflight = 0
        self._relay_task: asyncio.Task[None] | None = None
        self._publish_task: asyncio.Task[None] | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._health: tuple[float, Health] | None = None
        self.started = False
        self.stopping = False

    async def start(self) -> None:
        if self.settings.otlp_endpoint:
            self.tracing = Tracing("flashgate-gate", self.settings.otlp_endpoint)
        self.handoff.start(asyncio.get_running_loop())
        await self.records.start()
        if self.cluster is not None:
            await self.cluster.start()  # each node loads the scripts on its first NOSCRIPT
        elif self.redis is not None:
            with contextlib.suppress(RedisError, OSError):
                for name, source in self.scripts.source.items():
                    await self.redis.script_load(source)
                    log.debug("loaded %s.lua", name)
        if self.settings.relay_enabled:
            self._relay_task = asyncio.create_task(self.relay.run(self.settings.relay_interval_ms / 1000))
        self._publish_task = asyncio.create_task(self._publish_metrics())
        self._health_task = asyncio.create_task(self._watch_health())
        self.started = True

    async def _publish_metrics(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            self.publish_metrics()

    def publish_metrics(self) -> None:
        """Gauges read now, then every tally into the Prometheus metrics (the order path only counts)."""
        self.metrics.inflight = self.inflight
        self.metrics.breaker_open = self.batcher.breaker_open
        self.metrics.publish()

    async def stop(self, flush_timeout_s: float = 10.0) -> None:
        """Stop the relay, flush the producer (late deliveries still ack), close Redis."""
        self.stopping = True  # not ready from here on
        for task in (self._relay_task, self._publish_task, self._health_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.desk.drain()
        left = await self.handoff.close(flush_timeout_s)
        if left:
            log.warning("%d message(s) not delivered at shutdown; they stay in the outbox for the relay", left)
        await self.acker.drain()
        await self.batcher.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.records.close()
        self.publish_metrics()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # the last spans out (blocking HTTP)

    async def health(self) -> Health:
        """Ready: started and Redis answers PING; Kafka unreachable only degrades (gate/health.py). Cached 1 s."""
        if not self.started or self.stopping:  # clients not (or no longer) there: nothing to probe
            return judge(started=self.started, stopping=self.stopping, redis="unchecked", kafka="unchecked")
        if self._health is not None and time.monotonic() - self._health[0] < 1.0:
            return self._health[1]
        redis, kafka = await asyncio.gather(
            probe_redis(self.pinger, self.settings.redis_timeout_ms / 1000),
            probe_kafka(self.handoff, self.settings.topic, timeout_s=1.0),
        )
        health = judge(started=self.started, stopping=self.stopping, redis=redis, kafka=kafka)
        before = self._health[1] if self._health is not None else None
        if before is None or (before.redis, before.kafka) != (health.redis, health.kafka):
            log.log(logging.INFO if health.status == "ok" else logging.WARNING,
                    "health: %s (redis %s, kafka %s)", health.status, health.redis, health.kafka)  # fmt: skip
        self.metrics.kafka_degraded = health.kafka_degraded
        self._health = (time.monotonic(), health)
        return health

    async def _watch_health(self) -> None:
        while True:
            await self.health()
            await asyncio.sleep(HEALTH_INTERVAL_S)
