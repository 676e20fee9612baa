"""Every Kafka topic, consumer group, Redis key and Lua script name in one place.

Redis keys carry the SKU's hash tag (`{sku}`) so all keys one admission touches live in one
Redis Cluster slot; the order index lives in that slot too (`flashgate.orderindex`).
"""

from importlib.resources import files

# Package data: an installed wheel reads the scripts exactly as a checkout does.
LUA_DIR = files("flashgate") / "lua"


def lua_source(name: str) -> str:
    """The text of `flashgate/lua/<name>.lua` (names below)."""
    return (LUA_DIR / f"{name}.lua").read_text()


ORDERS_TOPIC = "orders"
DLQ_TOPIC = "orders.dlq"
WRITERS_GROUP = "flashgate-writers"

# Lua scripts under flashgate/lua/, by file stem.
ADMIT_SCRIPT = "admit"
OUTBOX_ACK_SCRIPT = "outbox_ack"
OUTBOX_CLAIM_SCRIPT = "outbox_claim"
SALE_SNAPSHOT_SCRIPT = "sale_snapshot"
SALE_APPLY_SCRIPT = "sale_apply"
IDEM_RESTORE_SCRIPT = "idem_restore"

# A consumer group sale_apply.lua creates on a rebuilt outbox stream. Nothing reads through it
# any more: relays find stale entries by stream id under a per-SKU lease (outbox_claim.lua).
OUTBOX_GROUP = "relay"
# Every SKU ever put on sale (a set, written by `flashgate sale` and the reconciler, never by
# admission): relays and the monitor find outboxes here instead of scanning the keyspace, which
# the idempotency keys dominate. It is one key in one slot, written once per sale.
SALE_REGISTRY = "flashgate:sales"


def _user(user: str) -> str:
    # Escaped so that a ':' in a user id cannot make two (user, key) pairs share one key name.
    return user.replace("%", "%25").replace(":", "%3A")


def stock_key(sku: str) -> str:
    """Units left on sale (integer string)."""
    return f"stock:{{{sku}}}"


def sale_key(sku: str) -> str:
    """The sale config hash: units, starts_at_ms, ends_at_ms, per_user_limit, rate_per_s, burst."""
    return f"sale:{{{sku}}}"


def rate_prefix(sku: str) -> str:
    """Prefix of the SKU's GCRA hashes `rl:{sku}:<width ms>:<bucket>` (user id → theoretical arrival time, µs).

    admit.lua picks the bucket from Redis time (see its header): GCRA states expire, and
    Redis 7.0 hash fields cannot, so they live in hashes that expire a bucket at a time.
    """
    return f"rl:{{{sku}}}"


def idem_prefix(sku: str) -> str:
    """Prefix of the SKU's answer hashes `idem:{sku}:<bucket>` (`idem_field` → stored answer).

    One hash per idempotency-TTL-wide bucket of Redis time (`idem_bucket`): an admission reads
    and writes the answers of its whole batch in one call per hash instead of one per order.
    """
    return f"idem:{{{sku}}}"


def idem_field(user: str, key: str) -> str:
    """The field of one (user, Idempotency-Key) in the answer hashes of its SKU."""
    return f"{_user(user)}:{key}"


def idem_bucket(sku: str, ttl_s: int, now_ms: int) -> str:
    """The answer hash admit.lua writes at `now_ms` (Redis time); the one before holds answers too."""
    return f"{idem_prefix(sku)}:{now_ms // (ttl_s * 1000)}"


def bought_key(sku: str) -> str:
    """Hash of user id → units admitted to that user on one SKU (the per-user cap).

    One hash per SKU rather than a key per buyer, so the reconciler reads every buyer of a
    SKU in the same atomic snapshot as its stock and outbox.
    """
    return f"bought:{{{sku}}}"


def outbox_key(sku: str) -> str:
    """The SKU's outbox stream: admitted orders not yet known to be in Kafka."""
    return f"outbox:{{{sku}}}"


def relay_lease_key(sku: str) -> str:
    """Which relay republishes this SKU's outbox now (holder name, PX expiry)."""
    return f"relay:{{{sku}}}"


def sku_of_outbox(key: str) -> str:
    """Inverse of `outbox_key`."""
    return key[len("outbox:{") : -1]


def sale_keys(sku: str) -> tuple[str, str, str, str]:
    """KEYS of sale_snapshot.lua and sale_apply.lua: sale config, stock, buyers, outbox."""
    return sale_key(sku), stock_key(sku), bought_key(sku), outbox_key(sku)
