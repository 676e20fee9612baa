"""Kafka handoff: one confluent-kafka Producer per process; delivery reports resolve asyncio futures.

A poll thread serves delivery reports and hands each batch of them to the event loop with one
`call_soon_threadsafe`. A fatal producer error (idempotence state lost) replaces the producer;
the messages of the old one fail, so their orders stay in the outbox for the relay.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from flashgate import events
from flashgate.events import OrderAccepted
from gate.errors import HandoffError

log = logging.getLogger(__name__)

Report = tuple[asyncio.Future[None], Any]


def producer_config(bootstrap: str, *, linger_ms: int, message_timeout_ms: int) -> dict[str, Any]:
    """Idempotent, acks=all, compressed; librdkafka retries within `message_timeout_ms`."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": linger_ms,
        "message.timeout.ms": message_timeout_ms,
        "logger": logging.getLogger("flashgate.kafka"),
    }


class Handoff:
    """`send(event)` → future resolved when Kafka acknowledged it (or failed with HandoffError)."""

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        *,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self._config = {**config, "error_cb": self._on_error}
        self._topic = topic
        self._factory = producer_factory
        self._producer: Any = producer_factory(self._config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reports: list[Report] = []
        self._stop = threading.Event()
        self._fatal = threading.Event()
        self._thread: threading.Thread | None = None
        self._timeout_s = config["message.timeout.ms"] / 1000
        self.inflight: dict[str, float] = {}  # order id → monotonic time it was handed to the producer
        self.recreated = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    def in_flight(self, order_id: str) -> bool:
        """Is a message for this order still possibly on its way (so republishing would duplicate it)?"""
        since = self.inflight.get(order_id)
        return since is not None and time.monotonic() - since < self._timeout_s + 1

    def send(self, event: OrderAccepted) -> asyncio.Future[None]:
        """Hand one event to the producer (key = order id); raises HandoffError if it refuses it."""
        assert self._loop is not None, "start() first"
        fut: asyncio.Future[None] = self._loop.create_future()
        order_id = str(event.order_id)
        try:
            self._producer.produce(
                self._topic, events.encode(event), order_id.encode(), on_delivery=partial(self._on_delivery, fut)
            )
        except (BufferError, KafkaException) as e:
            raise HandoffError(f"producer refused the message: {e}") from e
        self.inflight[order_id] = time.monotonic()
        fut.add_done_callback(partial(self._settled, order_id))
        return fut

    def _settled(self, order_id: str, fut: asyncio.Future[None]) -> None:
        self.inflight.pop(order_id, None)
        if not fut.cancelled():
            fut.exception()  # retrieved here: a caller past its budget no longer awaits it

    def list_topics(self, topic: str, timeout_s: float) -> Any:
        """A metadata request through the producer (blocking; readiness runs it in a thread)."""
        return self._producer.list_topics(topic, timeout=timeout_s)

    def _on_delivery(self, fut: asyncio.Future[None], err: Any, _msg: Any) -> None:
        self._reports.append((fut, err))  # poll thread only

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("kafka producer fatal error, recreating it: %s", err)
            self._fatal.set()
        else:
            log.debug("kafka producer: %s", err)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)
            if self._fatal.is_set():
                self._recreate()
            self._hand_over()

    def _recreate(self) -> None:
        self._fatal.clear()
        old, self._producer = self._producer, self._factory(self._config)
        self.recreated += 1
        old.purge()
        old.flush(0)  # fires the purged messages' delivery reports into self._reports

    def _hand_over(self) -> None:
        if self._reports and self._loop is not None:
            batch, self._reports = self._reports, []
            self._loop.call_soon_threadsafe(_resolve, batch)

    async def close(self, timeout_s: float) -> int:
        """Stop polling, flush what is queued (up to `timeout_s`); returns messages left undelivered."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        left = int(await asyncio.to_thread(self._producer.flush, timeout_s))
        self._hand_over()
        await asyncio.sleep(0)
        return left


def _resolve(batch: list[Report]) -> None:
    for fut, err in batch:
        if fut.done():
            continue
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(HandoffError(f"kafka: {err}"))
