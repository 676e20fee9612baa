"""`flashgate order show ID`: where one order is, from the 202 to its row, for a buyer's complaint.

It asks every place an admitted order can be, each on its own, so one store down still leaves
the others' answer:
- PostgreSQL `orders`: persisted (with its Kafka partition and offset);
- PostgreSQL `refused_orders`: reached the database but refused (an incident: docs/runbooks.md, OversellRefused);
- Redis's order index (`flashgate.orderindex`, kept for the idempotency TTL + 1 day): admitted;
  its outbox entry still there means `queued` (not yet known to be in Kafka), gone means `accepted`.

It also shows the trace id of the traceparent the order came with (the row's, or the outbox
entry's while it waits there), to find the order's trace (flashgate/tracecontext.py).

The stage is the furthest one found: persisted or refused, else accepted, else queued. Exit 0 when
the order was found; 1 when it was found nowhere or a store could not be asked (what the others
said is still printed, and stderr names the store); 2 for an id that is not a UUID.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import click
from redis.exceptions import RedisError

from flashgate import names, orderindex, tracecontext
from flashgate.outbox import decode_entry
from flashgate.redis_url import RedisUrlError, connect

ROW = (
    "SELECT sku, user_id, qty, idempotency_key, accepted_at, persisted_at, kafka_partition, kafka_offset, trace_id "
    "FROM orders WHERE order_id = $1"
)
REFUSED = (
    "SELECT sku, user_id, qty, idempotency_key, accepted_at, refused_at, reason, kafka_partition, kafka_offset, "
    "trace_id FROM refused_orders WHERE order_id = $1"
)
TIMEOUT_S = 5.0


@dataclass
class Whereabouts:
    """What each store says of one order; `stage` is the furthest one found."""

    order_id: str
    stage: str = "unknown"  # persisted | refused | accepted | queued | unknown
    sku: str | None = None
    user: str | None = None
    qty: int | None = None
    idempotency_key: str | None = None
    accepted_at: str | None = None
    persisted_at: str | None = None
    refused_at: str | None = None
    refused_reason: str | None = None
    kafka: str | None = None  # "partition/offset" of the message the worker recorded
    trace_id: str | None = None  # W3C trace id (32 hex) of the traceparent the order came with; None: none
    outbox_entry: str | None = None  # the stream id, while the entry waits in the SKU's outbox
    indexed: bool = False  # Redis's order index knows it
    unreachable: list[str] = field(default_factory=list)  # "PostgreSQL: …", "Redis: …"

    @property
    def found(self) -> bool:
        return self.stage != "unknown"

    def lines(self) -> list[str]:
        shown = {k: v for k, v in asdict(self).items() if k not in ("order_id", "stage", "unreachable")}
        if self.found and self.trace_id is None:
            shown["trace_id"] = "none (sent without a traceparent: the order id is its trace key)"
        return [f"order {self.order_id}: {self.stage}"] + [
            f"  {k.replace('_', ' ')}: {v}" for k, v in shown.items() if v not in (None, False)
        ]


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


async def _from_postgres(w: Whereabouts, oid: uuid.UUID, database_url: str) -> None:
    conn = await asyncpg.connect(database_url, timeout=TIMEOUT_S)
    try:
        row = await conn.fetchrow(ROW, oid, timeout=TIMEOUT_S)
        refused = None if row is not None else await conn.fetchrow(REFUSED, oid, timeout=TIMEOUT_S)
    finally:
        await conn.close()
    found = row or refused
    if found is None:
        return
    w.sku, w.user, w.qty, w.idempotency_key = found["sku"], found["user_id"], found["qty"], found["idempotency_key"]
    w.accepted_at, w.kafka = _iso(found["accepted_at"]), f"{found['kafka_partition']}/{found['kafka_offset']}"
    w.trace_id = None if found["trace_id"] is None else found["trace_id"].hex
    if row is not None:
        w.stage, w.persisted_at = "persisted", _iso(row["persisted_at"])
    else:
        w.stage, w.refused_at, w.refused_reason = "refused", _iso(found["refused_at"]), found["reason"]


async def _from_redis(w: Whereabouts, oid: uuid.UUID, redis_url: str) -> None:
    client = connect(redis_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)  # one Redis or a cluster
    try:
        entry = orderindex.lookup(oid, await client.hmget(orderindex.index_key(oid), orderindex.index_fields(oid)))
        if entry is None:
            return
        waiting = await client.xrange(names.outbox_key(entry.sku), entry.stream_id, entry.stream_id)
    finally:
        await client.aclose()
    w.indexed = True
    w.sku, w.user, w.qty = w.sku or entry.sku, w.user or entry.user, w.qty or entry.qty
    if waiting:
        w.outbox_entry = entry.stream_id
        fields = waiting[0][1] or {}
        try:
            orders = decode_entry(entry.stream_id, [x for kv in fields.items() for x in kv])
        except (KeyError, ValueError):  # a malformed entry (the relay leaves it in place too): no trace to show
            orders = []
        outboxed = next((o for o in orders if o.order_id == str(oid)), None)
        trace = None if outboxed is None else tracecontext.trace_id(outboxed.trace)  # the one it came with, if any
        w.trace_id = w.trace_id or (None if trace is None else trace.hex)
    if w.stage == "unknown":
        w.stage = "queued" if waiting else "accepted"


async def whereabouts(order_id: uuid.UUID, *, database_url: str, redis_url: str) -> Whereabouts:
    """Ask PostgreSQL, then Redis; a store that fails is named in `unreachable`, the other still answers."""
    w = Whereabouts(str(order_id))
    try:
        await _from_postgres(w, order_id, database_url)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as e:
        w.unreachable.append(f"PostgreSQL: {type(e).__name__}: {e}")
    try:
        await _from_redis(w, order_id, redis_url)
    except RedisUrlError as e:
        w.unreachable.append(str(e))
    except (RedisError, OSError, TimeoutError, ValueError) as e:
        w.unreachable.append(f"Redis: {type(e).__name__}: {e}")
    return w


def _order_id(_ctx: click.Context, _param: click.Parameter, value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an order id (a UUID, as in the 202's order_id)") from None


def _given(value: str | None, env: str) -> str:
    if not value:
        raise click.ClickException(f"{env} is not set (--{env.lower().replace('_', '-')} or env {env})")
    return value


@click.group("order")
def order_group() -> None:
    """Look up single orders (on-call)."""


@order_group.command("show")
@click.argument("order_id", callback=_order_id)
@click.option("--database-url", envvar="DATABASE_URL", show_envvar=True, help="PostgreSQL URL.")
@click.option("--redis-url", envvar="REDIS_URL", show_envvar=True, help="Redis URL.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
def show_command(order_id: uuid.UUID, database_url: str | None, redis_url: str | None, as_json: bool) -> None:
    """Where ORDER_ID is: persisted, refused, accepted (in Kafka) or queued (in the outbox).

    Exit 0 when found; 1 when found nowhere or a store could not be asked; 2 for a malformed id.
    """
    w = asyncio.run(
        whereabouts(
            order_id, database_url=_given(database_url, "DATABASE_URL"), redis_url=_given(redis_url, "REDIS_URL")
        )
    )
    if as_json:
        out: dict[str, Any] = {**asdict(w), "found": w.found}
        click.echo(json.dumps(out))
    else:
        click.echo("\n".join(w.lines()))
    for problem in w.unreachable:
        click.echo(f"flashgate order show: {problem}", err=True)
    if w.unreachable or not w.found:
        if not w.found and not w.unreachable:
            click.echo(f"flashgate order show: {order_id} is in neither PostgreSQL nor Redis's order index", err=True)
        raise SystemExit(1)
