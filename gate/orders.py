"""The order flow of one request: sold-out cache, admission, Kafka handoff within the budget."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from functools import partial

from gate.admission import Admission, AdmissionClient, AdmitRequest, Code, OutboxEntry
from gate.answers import Answer, order_answer, status_answer
from gate.errors import HandoffError, NotFound
from gate.handoff import Handoff
from gate.ids import uuid7
from gate.metrics import GateMetrics
from gate.outbox import OutboxAcker, event_of
from gate.records import OrderRecords
from gate.relay import Relay
from gate.soldout import SoldOutCache


class OrderDesk:
    """`place(req)` → Answer. Raises RedisUnavailable (503) when Redis cannot be asked."""

    def __init__(
        self,
        *,
        admission: AdmissionClient,
        handoff: Handoff,
        acker: OutboxAcker,
        relay: Relay,
        records: OrderRecords,
        soldout: SoldOutCache,
        metrics: GateMetrics,
        budget_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admission = admission
        self._handoff = handoff
        self._acker = acker
        self._relay = relay
        self._records = records
        self._soldout = soldout
        self._metrics = metrics
        self._budget_s = budget_s
        self._clock = clock

    async def place(self, req: AdmitRequest) -> Answer:
        if self._soldout.is_sold_out(req.sku, self._clock()):
            self._metrics.soldout_cache_hits.inc()
            # A retry of an order admitted before the sell-out must still get its stored answer.
            stored = await self._admission.stored_answer(req)
            return order_answer(stored or Admission(Code.SOLD_OUT, stock_left=0), req)
        order_id = str(uuid7())
        adm = await self._admission.admit(req, order_id)
        if adm.stock_left == 0:
            self._soldout.mark(req.sku, self._clock())
        if adm.code is not Code.ACCEPTED or adm.replayed:
            return order_answer(adm, req)
        self._admission.index_order(order_id, req, adm.stream_id)
        self._relay.note_sku(req.sku)
        delivered = await self._hand_off(req, adm)
        self._metrics.handoffs.labels("accepted" if delivered else "queued").inc()
        return order_answer(adm, req, delivered=delivered)

    async def _hand_off(self, req: AdmitRequest, adm: Admission) -> bool:
        """Produce and wait up to the budget. Never hands stock back: undelivered stays in the outbox."""
        entry = OutboxEntry(adm.stream_id, adm.order_id, req.user, req.qty, req.key, adm.accepted_at_us)
        try:
            fut = self._handoff.send(event_of(req.sku, entry))
        except HandoffError:
            return False
        fut.add_done_callback(partial(self._delivered, req.sku, adm.stream_id))
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._budget_s)
        except (TimeoutError, HandoffError):
            return False
        return True

    def _delivered(self, sku: str, stream_id: str, fut: asyncio.Future[None]) -> None:
        # Also after the budget: a late delivery still clears the outbox entry.
        if not fut.cancelled() and fut.exception() is None:
            self._acker.ack(sku, stream_id)

    async def status(self, order_id: str, user: str) -> Answer:
        """Where an order is: `persisted` (PostgreSQL), else `queued`/`accepted` (Redis). 404 for others' orders.

        PostgreSQL unreachable → the Redis answer; Redis unreachable too → RedisUnavailable (503).
        """
        try:
            oid = uuid.UUID(order_id)
        except ValueError as e:
            raise NotFound("no such order") from e
        row = await self._records.find(oid)
        indexed = None if row is not None else await self._admission.order(order_id)
        return status_answer(order_id, user, row, indexed)
