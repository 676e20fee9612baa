"""The outbox seen from Python: events rebuilt from entries, and acks batched per SKU per tick."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from flashgate.events import SCHEMA_VERSION, OrderAccepted
from flashgate.outbox import OutboxEntry
from gate.admission import AdmissionClient

log = logging.getLogger(__name__)


def accepted_at(us: int) -> datetime:
    """Redis server time in µs → timezone-aware UTC datetime (exact to the µs)."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def event_of(sku: str, entry: OutboxEntry) -> OrderAccepted:
    """The OrderAccepted an outbox entry stands for (the same bytes the gate first produced)."""
    return OrderAccepted(
        schema_version=SCHEMA_VERSION,
        order_id=uuid.UUID(entry.order_id),
        sku=sku,
        user_id=entry.user,
        qty=entry.qty,
        idempotency_key=entry.key,
        accepted_at=accepted_at(entry.accepted_at_us),
    )


class OutboxAcker:
    """`ack(sku, stream_id)` after Kafka delivery; one outbox_ack.lua call per SKU per event-loop tick.

    `ack` returns a future that completes when the SKU's call is done: True once the entry is gone
    from the outbox (deleted now, or already), False if the call failed. A failed ack is logged and
    dropped: the entry stays pending and a relay republishes it later, a harmless duplicate (the
    worker dedups by order id); until then the order reads `queued`, so its answer says so too.
    """

    def __init__(self, admission: AdmissionClient) -> None:
        self._admission = admission
        self._pending: dict[str, tuple[list[str], asyncio.Future[bool]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.acked = 0

    def ack(self, sku: str, stream_id: str) -> asyncio.Future[bool]:
        pending = self._pending.get(sku)
        if pending is None:
            loop = asyncio.get_running_loop()
            if not self._pending:
                loop.call_soon(self._flush)
            pending = self._pending[sku] = ([], loop.create_future())
        pending[0].append(stream_id)
        return pending[1]

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        loop = asyncio.get_running_loop()
        for sku, (ids, done) in pending.items():
            task = loop.create_task(self._ack(sku, ids, done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _ack(self, sku: str, ids: list[str], done: asyncio.Future[bool]) -> None:
        ok = False
        try:
            self.acked += await self._admission.ack(sku, ids)
            ok = True
        except Exception as e:  # Redis down, an error reply: the relay covers both
            log.warning("outbox ack of %d entries of %s failed, the relay will republish them: %s", len(ids), sku, e)
        finally:
            done.set_result(ok)

    async def drain(self) -> None:
        """Wait for acks in flight (shutdown)."""
        await asyncio.sleep(0)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
