"""The order path of POST /v1/orders, from parsed request to answer, paid per batch wherever it can be.

    place(req) ──▶ sold out and the user never bought? ──▶ 409 sold_out (no Redis; gate/soldout.py)
        │
        ▼ queued per SKU for the admission window (2 ms from the first order waiting; 0: one loop tick)
    _admit: ONE admit.lua call for up to `batch_max` orders of one SKU             [Redis]
        │   each order still gets its own atomic decision, in arrival order
        │── not admitted (replay, 404, 409, 422) ──────────────────────────────▶ answered now
        │── 429 ──▶ RateLimit fields (gate/ratelimit.py; the SKU's policy, cached) ──▶ answered
        ▼ admitted: the order is in the SKU's outbox stream
    ONE message for the call's admitted orders (event version 2; no key)          [Kafka]
        │── budget passes first, or Kafka refuses/fails ───────▶ 202 queued (safe in the outbox)
        ▼ delivery reports, polled from the loop
    EntryDelivery: every order of the call's outbox entry delivered ──▶ OutboxAcker:
    XDEL of the tick's delivered entries, one call per SKU                        [Redis]
        │
        ▼ ack done ──────────────────────────────────────────────────────────────▶ 202 accepted

An order's stage only moves forward, and no answer reports an earlier stage than one already
given (docs/http-api.md, "Stages"): queued (in the outbox) → accepted (in Kafka, gone from the outbox) →
persisted (a row). So the 202 `accepted` waits for the ack: a replay reads the outbox, and the
entry is gone before `accepted` is said. The orders of one admit.lua call share one outbox entry,
so they are answered together: `accepted` once all are in Kafka and the entry is gone, `queued`
for all as soon as one fails (the entry stays until a relay republishes its orders; the worker
drops the duplicates). A failed ack answers `queued` too. A replay of an order still in the outbox
asks PostgreSQL: a row there (the worker got it through Kafka) makes it `accepted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from msgspec.structs import replace

from flashgate import orderindex
from flashgate.outbox import OutboxOrder
from gate.admission import Admission, AdmissionClient, AdmitRequest, Code
from gate.answers import Answer, order_answer, status_answer
from gate.errors import HandoffError, NotFound
from gate.handoff import Handoff
from gate.metrics import GateMetrics
from gate.outbox import OutboxAcker, Relay, produce_entry
from gate.ratelimit import RatePolicies
from gate.records import OrderRecords
from gate.soldout import SoldOutCache

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Waiting:
    """One order between its request and its answer."""

    req: AdmitRequest
    answer: asyncio.Future[Answer]
    adm: Admission | None = None

    def give(self, answer: Answer) -> None:
        # The request may be gone (client disconnected): its future is then cancelled.
        if not self.answer.done():
            self.answer.set_result(answer)


class OrderDesk:
    """`await place(req)` → Answer. Raises RedisUnavailable (503) when Redis cannot be asked."""

    def __init__(
        self,
        *,
        admission: AdmissionClient,
        handoff: Handoff,
        acker: OutboxAcker,
        relay: Relay,
        records: OrderRecords,
        soldout: SoldOutCache,
        policies: RatePolicies,
        metrics: GateMetrics,
        budget_s: float,
        batch_max: int = 256,
        window_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admission = admission
        self._handoff = handoff
        self._acker = acker
        self._relay = relay
        self._records = records
        self._soldout = soldout
        self._policies = policies
        self._metrics = metrics
        self._budget_s = budget_s
        self._batch_max = batch_max
        self._window_s = window_s
        self._clock = clock
        self._queue: dict[str, list[_Waiting]] = {}
        self._scheduled = False
        self._slots: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def place(self, req: AdmitRequest) -> Answer:
        if self._soldout.answers_sold_out(req.sku, req.user, self._clock()):
            self._metrics.events["soldout_cache_hits"] += 1
            return order_answer(Admission(Code.SOLD_OUT, stock_left=0), req)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(req, loop.create_future())
        batch = self._queue.get(req.sku)
        if batch is None:
            self._queue[req.sku] = [waiting]
        else:
            batch.append(waiting)
            if self._window_s > 0 and len(batch) >= self._batch_max:  # a full call does not wait for the window
                self._spawn(self._admit(req.sku, self._queue.pop(req.sku)))
        if not self._scheduled:
            self._scheduled = True
            if self._window_s > 0:
                loop.call_later(self._window_s, self._flush)
            else:
                loop.call_soon(self._flush)
        return await waiting.answer

    def _flush(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, {}
        for sku, waiting in queue.items():
            for i in range(0, len(waiting), self._batch_max):
                self._spawn(self._admit(sku, waiting[i : i + self._batch_max]))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _admit(self, sku: str, batch: list[_Waiting]) -> None:
        slot = self._slots.get(sku)
        if slot is None:
            slot = self._slots[sku] = orderindex.sku_slot(sku)
        now_ms = time.time_ns() // 1_000_000  # one day for the whole batch: one index hash
        order_ids = orderindex.new_order_id_texts(slot, len(batch), now_ms)
        try:
            results = await self._admission.admit_batch(sku, [w.req for w in batch], order_ids)
        except Exception as e:  # RedisUnavailable → 503 for each; anything else → 500 for each
            for w in batch:
                if not w.answer.done():
                    w.answer.set_exception(e)
            return
        admitted: list[_Waiting] = []
        for w, adm in zip(batch, results, strict=True):
            self._note_stock(sku, adm)
            if adm.code is Code.ACCEPTED and not adm.replayed:
                w.adm = adm
                admitted.append(w)
            else:
                self._answer_judged(sku, w, adm, now_ms)
        if admitted:
            budget = asyncio.get_running_loop().call_later(self._budget_s, self._budget_passed, admitted)
            self._hand_off(sku, admitted, budget)

    def _answer_judged(self, sku: str, w: _Waiting, adm: Admission, now_ms: int) -> None:
        """An order Redis did not admit now: a replay, or a refusal (404, 409, 422, 429)."""
        if adm.replayed and adm.pending:
            self._spawn(self._replay_pending(w, adm))
        elif adm.code is Code.RATE_LIMITED:  # never a replay: 429s are not stored
            self._spawn(self._answer_limited(sku, w, adm))
        else:
            w.give(order_answer(adm, w.req, now_ms=now_ms))

    async def _answer_limited(self, sku: str, w: _Waiting, adm: Admission) -> None:
        w.give(replace(order_answer(adm, w.req), headers=await self._policies.headers(sku, adm.wait_ms)))

    async def _replay_pending(self, w: _Waiting, adm: Admission) -> None:
        """A replay of an order still in the outbox: `accepted` if PostgreSQL already has its row.

        The outbox entry can outlive the order's trip through Kafka (a failed ack, a gate that died
        after producing): GET may have said `persisted` meanwhile. PostgreSQL unknown → `queued`.
        """
        try:
            row = await self._records.find(uuid.UUID(adm.order_id))
        except Exception:  # never leave the buyer without an answer: the stage known without the row
            log.exception("replay of order %s: PostgreSQL lookup failed", adm.order_id)
            row = None
        w.give(order_answer(adm if row is None else replace(adm, pending=False), w.req))

    def _note_stock(self, sku: str, adm: Admission) -> None:
        if adm.stock_left != 0:
            return
        # SOLD_OUT carries the buyer count; an order that took the last units changed the buyers.
        self._soldout.mark(sku, self._clock(), adm.buyers if adm.code is Code.SOLD_OUT else None)
        if self._soldout.wants_buyers(sku):
            self._spawn(self._fetch_buyers(sku))

    async def _fetch_buyers(self, sku: str) -> None:
        try:
            buyers = await self._admission.buyers(sku)
        except Exception as e:  # Redis down or an error reply: ask again at the next sold-out answer
            log.debug("buyer set of %s not fetched: %s", sku, e)
            self._soldout.fetch_failed(sku)
            return
        self._soldout.set_buyers(sku, frozenset(buyers), self._clock())

    def _hand_off(self, sku: str, admitted: list[_Waiting], budget: asyncio.TimerHandle) -> None:
        """Produce the orders of one call's outbox entry; answered together once the entry is acked or kept.

        Also after the budget: a late delivery of the last order still clears the entry. An entry
        done within the budget cancels its timer, which would otherwise wake the loop for nothing.
        """
        self._relay.note_sku(sku)
        orders = []
        for w in admitted:
            adm, req = w.adm, w.req
            assert adm is not None
            orders.append(
                OutboxOrder(adm.stream_id, adm.order_id, req.user, req.qty, req.key, adm.accepted_at_us, req.trace)
            )
        # Refused: the entry stays in the outbox and its orders are answered `queued` (on_done(False)).
        with contextlib.suppress(HandoffError):
            produce_entry(self._handoff, self._acker, sku, orders, on_done=partial(self._entry_done, admitted, budget))

    def _entry_done(self, admitted: list[_Waiting], budget: asyncio.TimerHandle, acked: bool) -> None:
        budget.cancel()
        # Only an order gone from the outbox is answered `accepted`: a replay reads the outbox.
        for w in admitted:
            if acked:
                self._answer_accepted(w)
            else:
                self._answer_queued(w)

    def _answer_accepted(self, w: _Waiting) -> None:
        if not w.answer.done() and w.adm is not None:
            self._metrics.handoffs["accepted"] += 1
            w.answer.set_result(order_answer(w.adm, w.req, delivered=True))

    def _answer_queued(self, w: _Waiting) -> None:
        if not w.answer.done() and w.adm is not None:
            self._metrics.handoffs["queued"] += 1
            w.answer.set_result(order_answer(w.adm, w.req, delivered=False))

    def _budget_passed(self, handed: list[_Waiting]) -> None:
        for w in handed:
            self._answer_queued(w)

    async def status(self, order_id: str, user: str) -> Answer:
        """Where an order is: `persisted` (PostgreSQL), else `queued`/`accepted` (Redis). 404 for others' orders.

        PostgreSQL unreachable → the Redis answer; Redis unreachable too → RedisUnavailable (503).
        """
        try:
            oid = uuid.UUID(order_id)
        except ValueError as e:
            raise NotFound("no such order") from e
        row = await self._records.find(oid)
        indexed = None if row is not None else await self._admission.order(oid)
        return status_answer(order_id, user, row, indexed)

    async def drain(self) -> None:
        """Wait for admissions in flight (shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
