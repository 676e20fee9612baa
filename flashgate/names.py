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


def rate_key(sku: str, user: str) -> str:
    """GCRA state (theoretical arrival time, µs) of one user on one SKU."""
    return f"rl:{{{sku}}}:{_user(user)}"


def idem_key(sku: str, user: str, key: str) -> str:
    """Fingerprint and stored answer of one (user, Idempotency-Key) on one SKU, with a TTL."""
    return f"idem:{{{sku}}}:{_user(user)}:{key}"


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


def idem_pattern(sku: str) -> str:
    """SCAN pattern for every idempotency answer of one SKU (glob characters in the SKU escaped)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in sku)
    return f"idem:{{{escaped}}}:*"
