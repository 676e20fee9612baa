"""The check every chaos test ends with: wait for the drain, run the shared checker, print one summary line.

The checker is the reconciler's verify mode, `flashgate reconcile verify --sku S --accepted FILE
--json` (I1 no oversell, I2 no loss of any 202 the buyers saw, I3 no duplicates, I4 conservation).
Waiting for the drain is only a deadline-bounded poll: whatever state the deadline finds, verify
judges it (an undrained pipeline fails I4 as "not drained").
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from flashgate import names
from flashgate.redis_url import connect
from reconcile.verify import SkuVerdict
from tests.chaos.load import Load
from tests.support.kafkautil import group_lag
from tests.support.oncall import oncall
from tests.support.stackctl import StackHandle


def verdict(d: dict[str, Any]) -> SkuVerdict:
    """verify's --json report for one SKU, as the reconciler's own type (`ok` is derived from violations)."""
    return SkuVerdict(**{k: d[k] for k in SkuVerdict.__dataclass_fields__})


async def cli(stack: StackHandle, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    """`flashgate <args>` with the stack's URLs, in a thread (the load keeps running); its stdout.

    Fails with stderr unless the exit code is in `ok`.
    """
    done = await asyncio.to_thread(oncall, stack, *args)
    if done.returncode not in ok:
        raise AssertionError(f"flashgate {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


async def verify(stack: StackHandle, sku: str, accepted: Iterable[str], workdir: Path) -> SkuVerdict:
    """Run `flashgate reconcile verify` for `sku` with the order ids buyers got a 202 for."""
    path = workdir / f"accepted-{sku}.txt"
    path.write_text("".join(f"{order_id}\n" for order_id in sorted(accepted)))
    out = await cli(stack, "reconcile", "verify", "--sku", sku, "--accepted", str(path), "--json", ok=(0, 1))
    report = json.loads(out)
    (mine,) = [s for s in report["skus"] if s["sku"] == sku]
    return verdict(mine)


def summary_line(fault: str, loads: Sequence[Load], v: SkuVerdict) -> str:
    """fault, requests sent, 202s, rows persisted, lost, duplicated, oversold (the last three must be 0)."""
    sent = sum(load.sent for load in loads)
    accepted = len(set().union(*(load.accepted_ids() for load in loads))) if loads else 0
    return (
        f"chaos [{fault}] sent={sent} 202={accepted} rows={v.rows} "
        f"lost={v.lost} duplicated={v.duplicated} oversold={v.oversold}"
    )


async def drain_state(stack: StackHandle, sku: str) -> tuple[int, int, int, int, int]:
    """(units on sale, units sold in PostgreSQL, Redis stock, outbox length, group lag) right now."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        row = await conn.fetchrow("SELECT units_on_sale, units_sold FROM products WHERE sku = $1", sku)
    finally:
        await conn.close()
    assert row is not None, f"no product row for {sku}"
    r = connect(stack.redis_url, decode_responses=True, socket_timeout=5)
    try:
        stock, outbox = await r.get(names.stock_key(sku)), await r.xlen(names.outbox_key(sku))
    finally:
        await r.aclose()
    lag = await asyncio.to_thread(group_lag, stack.kafka_bootstrap, names.WRITERS_GROUP, names.ORDERS_TOPIC)
    return row["units_on_sale"], row["units_sold"], int(stock or 0), outbox, lag


async def wait_drained(stack: StackHandle, sku: str, *, timeout_s: float = 60) -> tuple[int, int, int, int, int]:
    """Poll until stock + sold = on sale, the outbox is empty and the writers' lag is 0; give up at the deadline.

    Returns the last state seen (see `drain_state`).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        state = on_sale, sold, stock, outbox, lag = await drain_state(stack, sku)
        if (stock + sold == on_sale and outbox == 0 and lag == 0) or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Invariants:
    """Bound to one test: its stack, a folder for the accepted-ids file, where summary lines go."""

    stack: StackHandle
    workdir: Path
    record: Callable[[str], None]

    async def check(self, sku: str, *, fault: str, loads: Sequence[Load], drain_timeout_s: float = 60) -> SkuVerdict:
        """Drain, verify, record the summary line; fail unless every invariant holds."""
        began = time.monotonic()
        state = await wait_drained(self.stack, sku, timeout_s=drain_timeout_s)
        print(f"drain: {time.monotonic() - began:.1f} s, (on sale, sold, stock, outbox, lag) = {state}")
        accepted = set().union(*(load.accepted_ids() for load in loads)) if loads else set()
        v = await verify(self.stack, sku, accepted, self.workdir)
        line = summary_line(fault, loads, v)
        self.record(line)
        assert (v.lost, v.duplicated, v.oversold) == (0, 0, 0), f"{line}: {v.violations}"
        assert v.ok, f"{line}: {v.violations}"
        return v
