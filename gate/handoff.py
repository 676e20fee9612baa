"""Kafka handoff: one confluent-kafka Producer per process, its delivery reports polled from the event loop.

No poll thread: while messages are in flight the loop calls `poll(0)`, so each delivery callback
runs on the loop and answers its order directly, without a thread handover or a wake-up per
report. It polls only when a report can be there: not before the oldest message in flight has
lingered `linger.ms` (librdkafka sends a batch no sooner, and that message opened its batch),
then every `poll_interval_s` until it is reported (a batch that fills up, `batch.size`, goes
sooner; a gate's batches are far smaller, and a relay's would wait one linger more). Every poll
is a wake-up of the loop, which costs far more than `poll(0)` itself (~60 µs against 0.4 here).
Idle, the producer is polled every IDLE_POLL_S for its error and log callbacks.

The orders of one outbox entry (one admission call) go as ONE message of event schema version 2
(`send_batch`; flashgate/events.py), so the producer, the broker and the worker pay per call, not
per order; `event_version` 1 sends one message per order instead, for workers
older than version 2. Messages carry no key: the worker dedups by order id and needs no per-order
partitioning, and keyless messages let librdkafka's sticky partitioner fill one partition's
batch at a time, which the broker pays for per batch, not per message. A fatal producer error
(idempotence state lost) replaces the producer; the messages of the old one fail, so their
orders stay in the outbox for the relay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, Producer

from flashgate import events, tracecontext
from flashgate.events import BATCH_SCHEMA_VERSION, OrderAccepted, OrdersAccepted
from flashgate.kafka_client import PLAINTEXT, KafkaSecurity, client_config
from gate.errors import HandoffError
from gate.metrics import GateMetrics

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5
OnDelivered = Callable[[HandoffError | None], None]


class ProducerLike(Protocol):
    """What the handoff uses of confluent_kafka.Producer (a double stands in for it in unit tests)."""

    def produce(
        self, topic: str, value: bytes, *, on_delivery: Callable[[Any, Any], None], headers: Any = None
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def purge(self) -> None: ...
    def list_topics(self, topic: str, timeout: float) -> Any: ...


def producer_config(
    bootstrap: str,
    *,
    linger_ms: int,
    message_timeout_ms: int,
    compression: str = "lz4",
    security: KafkaSecurity | None = None,
) -> dict[str, Any]:
    """Idempotent, acks=all; librdkafka retries within `message_timeout_ms`; TLS/SASL from `security`."""
    role = {
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": compression,
        "linger.ms": linger_ms,
        "message.timeout.ms": message_timeout_ms,
        "logger": logging.getLogger("flashgate.kafka"),
    }
    return client_config(bootstrap, security or PLAINTEXT, role)


class Handoff:
    """`send(event, on_delivered)` or `send_batch(batch, on_delivered)`: `on_delivered(None)` once Kafka
    acknowledged the message, `(HandoffError)` if it failed.

    Callbacks run on the event loop. `send` raises HandoffError when the producer refuses the
    message (queue full); the caller's order then stays in the outbox.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        *,
        metrics: GateMetrics,
        poll_interval_s: float = 0.001,
        producer_factory: Callable[[dict[str, Any]], ProducerLike] | None = None,
        event_version: int = BATCH_SCHEMA_VERSION,
    ) -> None:
        self._config = {**config, "error_cb": self._on_error}
        self._topic = topic
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._factory = producer_factory or cast(Callable[[dict[str, Any]], ProducerLike], Producer)
        self._producer = self._factory(self._config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll_handle: asyncio.TimerHandle | None = None
        self._poll_at = 0.0  # loop time of the scheduled poll
        self._linger_s = config.get("linger.ms", 0) / 1000
        self._fatal = False
        self._timeout_s = config["message.timeout.ms"] / 1000
        # Version 2: one message per outbox entry (`send_batch`); 1: one per order (`send`).
        self.batched = event_version == BATCH_SCHEMA_VERSION
        # order id → monotonic time it was handed to the producer, oldest first (dicts keep insertion order)
        self.inflight: dict[str, float] = {}
        self.recreated = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._schedule_poll()

    def in_flight(self, order_id: str) -> bool:
        """Is a message for this order still possibly on its way (so republishing would duplicate it)?"""
        since = self.inflight.get(order_id)
        return since is not None and time.monotonic() - since < self._timeout_s + 1

    def send(self, event: OrderAccepted, on_delivered: OnDelivered, *, trace: str = "") -> None:
        """Hand one version-1 event to the producer; raises HandoffError if it refuses it.

        `trace`, the order's traceparent, goes in the message's `traceparent` header (none if "").
        """
        headers = [(tracecontext.HEADER, trace.encode())] if trace else None
        self._produce(events.encode(event), (str(event.order_id),), on_delivered, headers)

    def send_batch(self, batch: OrdersAccepted, on_delivered: OnDelivered) -> None:
        """Hand the orders of one admission call to the producer as ONE version-2 message (their
        traceparents inside it); `on_delivered` runs once for all of them. Raises HandoffError if refused.
        """
        self._produce(events.encode(batch), [str(o.order_id) for o in batch.orders], on_delivered, None)

    def _produce(self, value: bytes, order_ids: Sequence[str], on_delivered: OnDelivered, headers: Any) -> None:
        began = time.perf_counter()
        delivered = partial(self._on_delivery, order_ids, began, on_delivered)
        try:
            if headers:
                self._producer.produce(self._topic, value, on_delivery=delivered, headers=headers)
            else:
                self._producer.produce(self._topic, value, on_delivery=delivered)
        except (BufferError, KafkaException) as e:
            self._metrics.kafka_deliveries["refused"] += 1
            raise HandoffError(f"producer refused the message: {e}") from e
        now = time.monotonic()
        for order_id in order_ids:
            self.inflight.pop(order_id, None)  # a message sent again goes last: the first is the oldest
            self.inflight[order_id] = now
        self._schedule_poll()

    def list_topics(self, topic: str, timeout_s: float) -> Any:
        """A metadata request through the producer (blocking; readiness runs it in a thread)."""
        return self._producer.list_topics(topic, timeout=timeout_s)

    def _schedule_poll(self) -> None:
        """Poll when the oldest message in flight can first be reported (idle: in IDLE_POLL_S); a poll
        already due sooner stays."""
        if self._loop is None:
            return
        delay = IDLE_POLL_S
        for since in self.inflight.values():  # the oldest
            delay = max(self._poll_interval_s, since + self._linger_s - time.monotonic())
            break
        at = self._loop.time() + delay
        if self._poll_handle is not None:
            if self._poll_at <= at:
                return
            self._poll_handle.cancel()
        self._poll_at = at
        self._poll_handle = self._loop.call_at(at, self._poll)

    def _poll(self) -> None:
        self._poll_handle = None
        self._producer.poll(0)  # delivery callbacks run in here, on the loop
        if self._fatal:
            self._recreate()
        self._schedule_poll()

    def _on_delivery(
        self, order_ids: Sequence[str], began: float, on_delivered: OnDelivered, err: Any, _msg: Any
    ) -> None:
        for order_id in order_ids:
            self.inflight.pop(order_id, None)
        if err is None:
            self._metrics.kafka_deliveries["delivered"] += 1
            self._metrics.kafka_delivery_seconds.observe(time.perf_counter() - began)
            failure = None
        else:
            self._metrics.kafka_deliveries["failed"] += 1
            failure = HandoffError(f"kafka: {err}")
        try:
            on_delivered(failure)
        except Exception:
            # An exception must not escape into librdkafka's poll: it would abort the other reports.
            log.exception("delivery callback failed for the message of order(s) %s", ", ".join(order_ids[:3]))

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("kafka producer fatal error, recreating it: %s", err)
            self._fatal = True
        else:
            log.debug("kafka producer: %s", err)

    def _recreate(self) -> None:
        self._fatal = False
        old, self._producer = self._producer, self._factory(self._config)
        self.recreated += 1
        old.purge()
        old.flush(0)  # fires the purged messages' delivery reports: their orders stay in the outbox

    async def close(self, timeout_s: float) -> int:
        """Flush what is queued (up to `timeout_s`), polling from the loop; returns messages left undelivered."""
        self._loop = None  # no more scheduled polls: flush serves the reports from here on
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None
        deadline = time.monotonic() + timeout_s
        left = self._producer.flush(0)
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            left = self._producer.flush(0)
        return int(left)
