"""Redis side of the reconciler and the sale tools: atomic snapshot, atomic apply, answer restore."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flashgate import names, orderindex
from flashgate.fingerprint import StoredAnswer, request_fingerprint
from flashgate.outbox import decode_entry
from flashgate.redis_url import AnyRedis, redis_now_ms
from flashgate.saleconfig import SaleConfig
from reconcile.model import OrderRef, RedisSnapshot

RESTORE_BATCH = 500


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _outbox_orders(entry: Sequence[Any]) -> list[OrderRef]:
    return [OrderRef(o.order_id, o.user, o.key, o.qty, o.accepted_at_us) for o in decode_entry(entry[0], entry[1])]


@dataclass(frozen=True, slots=True)
class Applied:
    """sale_apply.lua's outcome: code 0 applied, 1 sale vanished, 2 sale appeared (see its header)."""

    code: int
    stock: int = 0
    clamped: bool = False


class SaleRedis:
    """The three scripts, registered once on one client (redis-py reloads them on NOSCRIPT)."""

    def __init__(self, client: AnyRedis) -> None:
        self._client = client
        self._snapshot = client.register_script(names.lua_source(names.SALE_SNAPSHOT_SCRIPT))
        self._apply = client.register_script(names.lua_source(names.SALE_APPLY_SCRIPT))
        self._restore = client.register_script(names.lua_source(names.IDEM_RESTORE_SCRIPT))

    async def snapshot(self, sku: str) -> RedisSnapshot:
        now_us, sale, stock, bought, outbox = await self._snapshot(keys=names.sale_keys(sku))
        stock_text = _text(stock)
        return RedisSnapshot(
            taken_at_us=int(now_us),
            sale=_pairs(sale),
            stock=int(stock_text) if stock_text != "" else None,
            bought={user: int(units) for user, units in _pairs(bought).items()},
            outbox=[ref for e in outbox for ref in _outbox_orders(e)],
        )

    async def apply(
        self,
        sku: str,
        *,
        rebuild: bool,
        stock: int,
        cap: int | None,
        config: SaleConfig | None,
        users: dict[str, int],
    ) -> Applied:
        """Run sale_apply.lua: `stock` and `users` are deltas, or absolute values when `rebuild`."""
        fields = config.to_redis() if config else {}
        args: list[Any] = ["rebuild" if rebuild else "adjust", stock, -1 if cap is None else cap, names.OUTBOX_GROUP]
        args += [len(fields), *(x for kv in fields.items() for x in kv)]
        args += [len(users), *(x for kv in users.items() for x in kv)]
        reply = await self._apply(keys=names.sale_keys(sku), args=args)
        # Registered after the sale exists (another slot, so not in the script): relays find it.
        await self._client.sadd(names.SALE_REGISTRY, sku)
        if int(reply[0]) != 0:
            return Applied(int(reply[0]))
        return Applied(0, int(reply[1]), bool(int(reply[2])))

    async def restore_answers(self, sku: str, orders: Sequence[OrderRef], *, ttl_s: int, now_us: int) -> int:
        """Put back stored answers of admitted orders younger than `ttl_s`; returns how many were missing."""
        live = [o for o in orders if now_us - o.accepted_at_us < ttl_s * 1_000_000]
        restored = 0
        for i in range(0, len(live), RESTORE_BATCH):
            args: list[Any] = [ttl_s]
            for o in live[i : i + RESTORE_BATCH]:
                field = names.idem_field(o.user_id, o.idempotency_key)
                args += (field, request_fingerprint(sku, o.qty), o.order_id, o.accepted_at_us)
            restored += int(await self._restore(keys=[names.idem_prefix(sku)], args=args))
        return restored

    async def order_sku(self, order_id: str) -> str | None:
        """The SKU of an order from the gate's order index (`flashgate.orderindex`), None when unknown."""
        try:
            oid = uuid.UUID(order_id)
        except ValueError:
            return None
        values = await self._client.hmget(orderindex.index_key(oid), orderindex.index_fields(oid))
        entry = orderindex.lookup(oid, values)
        return None if entry is None else entry.sku

    async def accepted_answers(self, sku: str, *, ttl_s: int) -> dict[str, str]:
        """Order ids of the accepted answers Redis still remembers for `sku` → their answer field.

        Reads the two answer hashes admit.lua reads (the bucket of Redis time now and the one
        before, `names.idem_bucket`) with HSCAN, so a big sale does not block Redis; never a SCAN.
        """
        now_ms = await redis_now_ms(self._client)
        found: dict[str, str] = {}
        for at_ms in (now_ms - ttl_s * 1000, now_ms):
            bucket = names.idem_bucket(sku, ttl_s, at_ms)
            async for field, value in self._client.hscan_iter(bucket, count=1000):
                answer = StoredAnswer.decode(_text(value))
                if answer.code == 0 and answer.order_id:
                    found[answer.order_id] = _text(field)
        return found
