"""The relay: republish outbox entries older than a threshold, ack them once Kafka has them.

Runs in every gate process and as `flashgate relay`. Several relays are safe together: one at a
time holds a SKU's relay lease (outbox_claim.lua; it lapses after `stale_ms` if its holder
dies), an entry is deleted only after a delivery report, and deleting twice is a no-op. The
threshold exceeds the producer's message timeout, so a message the first producer may still
deliver is never republished beside it; the holder skips entries its own producer still has.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from functools import partial

from gate.admission import AdmissionClient
from gate.errors import GateError, HandoffError, RedisUnavailable
from gate.handoff import Handoff
from gate.metrics import GateMetrics
from gate.outbox import OutboxAcker, event_of

log = logging.getLogger(__name__)


class Relay:
    """`await relay.tick()` republishes what is stale now; `run()` ticks every `interval_s`.

    SKUs come from this process's admissions and, unless `discover_s` is 0, from the sale
    registry every `discover_s` (so a relay also covers the outboxes of crashed gates). The
    registry is one SMEMBERS: discovery never scans the keyspace. The registry keeps every SKU
    ever put on sale, so a tick first asks the length of every known outbox in one round trip
    and claims only from those that hold entries: an idle relay costs one round trip per tick,
    not one script call per SKU ever sold.
    """

    def __init__(
        self,
        admission: AdmissionClient,
        handoff: Handoff,
        acker: OutboxAcker,
        *,
        metrics: GateMetrics,
        stale_ms: int,
        batch: int,
        discover_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admission = admission
        self._metrics = metrics
        self._handoff = handoff
        self._acker = acker
        self._stale_ms = stale_ms
        self._batch = batch
        self._discover_s = discover_s
        self._clock = clock
        self._discovered_at: float | None = None
        self.skus: set[str] = set()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # the lease holder's name
        self.republished = 0

    def note_sku(self, sku: str) -> None:
        """An SKU this process admitted for: watch its outbox without waiting for discovery."""
        self.skus.add(sku)

    async def tick(self) -> int:
        """One pass over every known outbox; returns how many entries were handed to the producer.

        A SKU whose Redis cannot answer is passed over, and the others are relayed all the same (on a
        Redis Cluster one shard down must not hold up the rest); the tick then raises its error.
        """
        try:
            sent, failed = await self._tick()
        except Exception:
            self._metrics.relay_ticks["failed"] += 1
            raise
        self._metrics.events["relay_republished"] += sent
        if failed is not None:
            self._metrics.relay_ticks["failed"] += 1
            raise failed
        self._metrics.relay_ticks["ok"] += 1
        return sent

    async def _tick(self) -> tuple[int, RedisUnavailable | None]:
        now = self._clock()
        due = self._discovered_at is None or now - self._discovered_at >= self._discover_s
        if self._discover_s > 0 and due:
            self.skus.update(await self._admission.sale_skus())
            self._discovered_at = now
        skus = sorted(self.skus)
        sent, failed = 0, None
        for sku, length in zip(skus, await self._admission.outbox_lengths(skus), strict=True):
            try:
                if isinstance(length, RedisUnavailable):
                    raise length  # this SKU's Redis (its shard, on a cluster) did not answer
                if length:
                    sent += await self._relay_sku(sku)
            except RedisUnavailable as e:
                failed = failed or e
        self.republished += sent
        if sent:
            log.info("relay republished %d outbox entries", sent)
        return sent, failed

    async def _relay_sku(self, sku: str) -> int:
        sent, cursor = 0, "0-0"
        while True:
            cursor, entries = await self._admission.claim(
                sku,
                relay=self.name,
                min_age_ms=self._stale_ms,
                lease_ms=self._stale_ms,
                cursor=cursor,
                count=self._batch,
            )
            for entry in entries:
                if self._handoff.in_flight(entry.order_id):
                    continue
                try:
                    self._handoff.send(
                        event_of(sku, entry), partial(self._delivered, sku, entry.stream_id), trace=entry.trace
                    )
                except HandoffError as e:
                    log.warning("relay: producer refused a message, next tick retries: %s", e)
                    return sent
                sent += 1
            if cursor == "0-0":
                return sent

    def _delivered(self, sku: str, stream_id: str, err: HandoffError | None) -> None:
        if err is None:
            self._acker.ack(sku, stream_id)

    async def run(self, interval_s: float) -> None:
        """Tick forever; a failed tick (Redis down) is logged and retried next interval."""
        while True:
            try:
                await self.tick()
            except (GateError, OSError) as e:
                log.warning("relay tick failed: %s", e)
            except Exception:
                log.exception("relay tick crashed; retrying next interval")
            await asyncio.sleep(interval_s)
