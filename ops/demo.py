"""The demo sale `make run` opens: created once with `flashgate sale` semantics, kept afterwards.

If Redis lost the sale since (a wiped state folder, a flush), the reconciler rebuilds it from
the record, so re-running never re-sells sold units.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg

from flashgate.redis_url import connect
from ops.sale import store
from ops.sale.spec import SaleError, SaleSpec
from reconcile.redis_state import SaleRedis
from reconcile.run import reconcile
from reconcile.settings import ReconcileSettings

DEMO = SaleSpec("demo-sku", "Demo", stock=1000, per_user_limit=5, rate_per_s=5.0, burst=5)


async def open_demo_sale(settings: ReconcileSettings) -> int:
    """Ensure the demo sale exists in PostgreSQL and Redis; return the units left."""
    conn = await asyncpg.connect(settings.database_url)
    client = connect(settings.redis_url)
    try:
        try:
            await store.create(conn, SaleRedis(client), DEMO)
        except SaleError:
            (view,) = await store.views(conn, client, [DEMO.sku])
            if not view.redis_has_sale:
                await reconcile(settings, [DEMO.sku], apply=True)
        (view,) = await store.views(conn, client, [DEMO.sku])
        return view.redis_stock or 0
    finally:
        await client.aclose()
        await conn.close()


def main() -> None:
    left = asyncio.run(open_demo_sale(ReconcileSettings.from_env()))
    # Only for the hint below: the gate itself judges its variables (and their old names).
    port = os.environ.get("FLASHGATE_GATE_PORT") or os.environ.get("FLASHGATE_PORT") or "8000"
    print(f"demo sale {DEMO.sku}: {left} units left ({DEMO.per_user_limit} per buyer)")
    print(
        f"try: curl -s -XPOST localhost:{port}/v1/orders -H 'X-User-Id: alice' "
        f'-H \'Idempotency-Key: k1\' -d \'{{"sku": "{DEMO.sku}", "qty": 1}}\''
    )


if __name__ == "__main__":
    main()
