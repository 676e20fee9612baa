"""The Kafka handoff and the relay with their metrics: delivery latency and outcomes, relay passes."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from flashgate.events import OrderAccepted
from gate.errors import HandoffError
from gate.handoff import Handoff
from gate.metrics import GateMetrics
from gate.relay import Relay


class MeteredHandoff(Handoff):
    """A Handoff that times every delivery and counts delivered / failed / refused messages."""

    def __init__(self, config: dict[str, Any], topic: str, *, metrics: GateMetrics, **kwargs: Any) -> None:
        super().__init__(config, topic, **kwargs)
        self._metrics = metrics

    def send(self, event: OrderAccepted) -> asyncio.Future[None]:
        try:
            fut = super().send(event)
        except HandoffError:
            self._metrics.kafka_deliveries.labels("refused").inc()
            raise
        fut.add_done_callback(partial(self._observe, time.perf_counter()))
        return fut

    def _observe(self, began: float, fut: asyncio.Future[None]) -> None:
        failed = fut.cancelled() or fut.exception() is not None
        self._metrics.kafka_deliveries.labels("failed" if failed else "delivered").inc()
        if not failed:
            self._metrics.kafka_delivery_seconds.observe(time.perf_counter() - began)


class MeteredRelay(Relay):
    """A Relay that counts its passes (ok / failed) and the entries it republished."""

    def __init__(self, *args: Any, metrics: GateMetrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics

    async def tick(self) -> int:
        try:
            sent = await super().tick()
        except Exception:
            self._metrics.relay_ticks.labels("failed").inc()
            raise
        self._metrics.relay_ticks.labels("ok").inc()
        self._metrics.relay_republished.inc(sent)
        return sent
