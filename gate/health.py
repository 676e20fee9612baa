"""Readiness of one gate process: can it admit orders now, and is anything degraded?

Ready means the app started (and is not stopping) and Redis answers: admission is one Redis
call, and nothing else is needed to answer honestly. Kafka unreachable is *degraded*, never
unready: admitted orders wait in the Redis outbox (answered `queued`) and the relay hands them
over once Kafka is back, so pulling every gate out of service during a Kafka outage would turn
the very outage the outbox rides through into a full one. `judge` is the pure decision;
`probe` gathers its inputs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaException
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

OK = "ok"


class Pinger(Protocol):
    def ping(self) -> Any: ...  # an awaitable (redis.asyncio.Redis)


class MetadataSource(Protocol):
    def list_topics(self, topic: str, timeout_s: float) -> Any: ...


@dataclass(frozen=True)
class Health:
    """One check. `redis`/`kafka`: "ok" or a short reason without hosts or exception text."""

    ready: bool
    redis: str
    kafka: str
    why: str  # why not ready; "" when ready

    @property
    def status(self) -> str:
        """ "ok", "degraded" (ready, Kafka unreachable) or "not_ready"."""
        if not self.ready:
            return "not_ready"
        return OK if self.kafka == OK else "degraded"

    @property
    def kafka_degraded(self) -> bool:
        return self.kafka != OK

    def body(self) -> dict[str, str]:
        """The 200 answer of /health/ready."""
        return {"status": self.status, "redis": self.redis, "kafka": self.kafka}


def judge(*, started: bool, stopping: bool, redis: str, kafka: str) -> Health:
    """Ready iff started, not stopping and Redis answered; Kafka only marks the answer degraded."""
    if not started:
        return Health(False, redis, kafka, "starting")
    if stopping:
        return Health(False, redis, kafka, "stopping")
    if redis != OK:
        return Health(False, redis, kafka, f"redis: {redis}")
    return Health(True, redis, kafka, "")


async def probe_redis(client: Pinger, timeout_s: float) -> str:
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except (RedisError, OSError, TimeoutError) as e:
        return type(e).__name__
    return OK


async def probe_kafka(source: MetadataSource, topic: str, timeout_s: float) -> str:
    """A metadata request in a thread (librdkafka blocks); the error's code name, never its text."""
    try:
        await asyncio.to_thread(source.list_topics, topic, timeout_s)
    except KafkaException as e:  # its text names brokers: logged, not answered
        log.debug("health: Kafka metadata failed: %s", e)
        return e.args[0].name() if e.args and hasattr(e.args[0], "name") else "unreachable"
    return OK
