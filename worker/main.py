"""The worker's composition root: wire PostgreSQL, Kafka and metrics, run until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import asyncpg
from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from flashgate.kafka_client import client_config
from flashgate.otel import Tracing
from worker.consumer import OrderWriter
from worker.dlq import DeadLetters
from worker.metrics import WorkerMetrics
from worker.pool import InstrumentedPool
from worker.settings import WorkerSettings

log = logging.getLogger("flashgate.worker")


def consumer_config(settings: WorkerSettings) -> dict[str, Any]:
    role = {
        "group.id": settings.group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "partition.assignment.strategy": "cooperative-sticky",
        "auto.offset.reset": "earliest",
        "fetch.min.bytes": settings.fetch_min_bytes,
        "fetch.wait.max.ms": settings.fetch_wait_max_ms,
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        # A SIGKILLed worker's partitions move to the survivors after this long.
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
    }
    return client_config(settings.kafka_bootstrap, settings.kafka_security, role)


def dlq_producer_config(settings: WorkerSettings) -> dict[str, Any]:
    role = {"enable.idempotence": True, "acks": "all", "linger.ms": 5}
    return client_config(settings.kafka_bootstrap, settings.kafka_security, role)


async def open_pool(settings: WorkerSettings, stop: asyncio.Event) -> asyncpg.Pool | None:
    """Connect to PostgreSQL, retrying while it is down; None if shutdown came first."""
    delay_s = settings.retry_initial_ms / 1000
    while not stop.is_set():
        try:
            return await asyncpg.create_pool(
                settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as e:
            log.warning("PostgreSQL not reachable (%s); retrying in %.1f s", e, delay_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay_s)
            except TimeoutError:
                delay_s = min(delay_s * 2, settings.retry_max_ms / 1000)
    return None


async def serve(settings: WorkerSettings) -> None:
    """Run one worker process until SIGTERM or SIGINT, then finish the batch and leave cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_*: CPU, memory, open files of this worker
    metrics = WorkerMetrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    pool = await open_pool(settings, stop)
    if pool is None:
        return
    producer = Producer(dlq_producer_config(settings))
    tracing = Tracing("flashgate-worker", settings.otlp_endpoint) if settings.otlp_endpoint else None
    writer = OrderWriter(
        settings=settings,
        consumer=Consumer(consumer_config(settings)),
        dead_letters=DeadLetters(producer, settings.dlq_topic, timeout_s=settings.dlq_timeout_s),
        pool=InstrumentedPool(pool, metrics, acquire_timeout_s=settings.pool_acquire_timeout_s),
        metrics=metrics,
        tracing=tracing,
    )
    writer.subscribe()
    log.info("worker consuming %s as group %s", settings.topic, settings.group)
    try:
        await writer.run(stop)
    finally:
        await writer.close()
        producer.flush(5)
        await pool.close()
        if tracing is not None:
            tracing.shutdown()  # the last batches' spans out
        log.info("worker stopped")
