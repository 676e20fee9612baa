"""`diff`: what Redis must hold for one SKU and how far it is off — a pure function."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from flashgate.saleconfig import SaleConfig
from reconcile.model import ConfigDrift, OrderRef, SkuDiff, SkuInputs


def unrecorded(
    orders: Iterable[OrderRef], inputs: SkuInputs, *, until_us: int | None, counted: Iterable[OrderRef] = ()
) -> list[OrderRef]:
    """Orders without a database row and not in `counted`, each once (by order id and by (user, key)).

    `until_us`: keep only orders admitted up to then (None: keep all).
    """
    counted = list(counted)
    seen_ids = set(inputs.recorded.ids) | {o.order_id for o in counted}
    seen_identities = set(inputs.recorded.identities) | {o.identity for o in counted}
    kept = []
    for order in orders:
        if until_us is not None and order.accepted_at_us > until_us:
            continue
        if order.order_id in seen_ids or order.identity in seen_identities:
            continue
        seen_ids.add(order.order_id)
        seen_identities.add(order.identity)
        kept.append(order)
    return kept


def config_drifts(found: dict[str, str], expected: SaleConfig) -> list[ConfigDrift]:
    """Fields of the Redis sale config that differ from the database (compared as numbers)."""
    drifts = []
    for name, want in expected.to_redis().items():
        got = found.get(name)
        try:
            same = got is not None and float(got) == float(want)
        except ValueError:
            same = False
        if not same:
            drifts.append(ConfigDrift(name, got, want))
    return drifts


def diff(inputs: SkuInputs) -> SkuDiff:
    """Compare the Redis snapshot with the record as of the snapshot's time.

    Expected stock = units on sale − units recorded − units in flight in Kafka − units pending
    in the outbox, counting only orders admitted before the snapshot: an order admitted after
    it took its stock after the snapshot too, so a relative repair leaves it counted.
    The cap is what is provably left counting every order known, whenever admitted.
    """
    snap, product = inputs.redis, inputs.product
    outbox = unrecorded(snap.outbox, inputs, until_us=None)
    in_flight = unrecorded(inputs.backlog, inputs, until_us=snap.taken_at_us, counted=outbox)
    every_unrecorded = unrecorded([*snap.outbox, *inputs.backlog], inputs, until_us=None)

    bought = Counter(inputs.recorded.units_by_user)
    for order in (*in_flight, *outbox):
        bought[order.user_id] += order.qty
    expected_bought = {user: units for user, units in bought.items() if units > 0}
    users = set(expected_bought) | set(snap.bought)
    user_drifts = {
        u: (snap.bought.get(u, 0), expected_bought.get(u, 0))
        for u in sorted(users)
        if snap.bought.get(u, 0) != expected_bought.get(u, 0)
    }

    sold = sum(inputs.recorded.units_by_user.values())
    in_flight_units = sum(o.qty for o in in_flight)
    outbox_units = sum(o.qty for o in outbox)
    expected_config = product.sale_config()
    return SkuDiff(
        sku=product.sku,
        units_on_sale=product.units_on_sale,
        units_sold=sold,
        in_flight=in_flight_units,
        outbox=outbox_units,
        expected_stock=product.units_on_sale - sold - in_flight_units - outbox_units,
        found_stock=snap.stock,
        cap=max(0, product.units_on_sale - inputs.recorded.units_total - sum(o.qty for o in every_unrecorded)),
        redis_has_sale=snap.has_sale,
        user_drifts=user_drifts,
        config_drifts=config_drifts(snap.sale, expected_config) if snap.has_sale else [],
        expected_bought=expected_bought,
        expected_config=expected_config,
        unrecorded=[*outbox, *in_flight],
    )
