"""Outbox backlog per SKU in Redis: entries not yet known to be in Kafka, and the oldest one's age."""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import RedisError

from flashgate import names
from flashgate.redis_url import AnyRedis
from ops.monitor.errors import SourceUnavailable


@dataclass(frozen=True)
class OutboxState:
    """One SKU's outbox: `entries` waiting, the oldest admitted `oldest_age_s` seconds ago (0 if none)."""

    entries: int
    oldest_age_s: float


def entry_age_s(stream_id: str | None, now_ms: int) -> float:
    """Age of a stream entry from its id (`<ms>-<seq>`, Redis time at XADD); 0 for no entry."""
    if stream_id is None:
        return 0.0
    return max(0, now_ms - int(stream_id.split("-", 1)[0])) / 1000


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


class OutboxProbe:
    """`await read()` → {sku: OutboxState} for every registered SKU; SourceUnavailable if Redis fails.

    SKUs come from the sale registry (`names.SALE_REGISTRY`), never from a keyspace SCAN.
    """

    def __init__(self, client: AnyRedis) -> None:
        self._client = client

    async def read(self) -> dict[str, OutboxState]:
        try:
            skus = sorted(_text(s) for s in await self._client.smembers(names.SALE_REGISTRY))
            keys = [names.outbox_key(sku) for sku in skus]
            # Ages by Redis's clock, the one that stamped the entry ids (on a cluster: a node's, taken
            # apart, since a cluster pipeline refuses keyless commands; the nodes' clocks agree via NTP).
            seconds, micros = await self._client.time()
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.xlen(key)
                    pipe.xrange(key, count=1)
                replies = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as e:
            raise SourceUnavailable(f"redis: {type(e).__name__}: {e}") from e
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        out = {}
        for i, key in enumerate(keys):
            length, first = replies[2 * i], replies[1 + 2 * i]
            oldest = first[0][0] if first else None
            out[names.sku_of_outbox(key)] = OutboxState(int(length), entry_age_s(oldest, now_ms))
        return out
