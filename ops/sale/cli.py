"""`flashgate sale create|list|show|add-stock|close`: one-line errors, exit 1; DATABASE_URL and REDIS_URL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import click
from click.core import ParameterSource
from redis.exceptions import RedisError

from flashgate.redis_url import AnyRedis, RedisUrlError, check, connect
from ops.sale import store
from ops.sale.spec import SaleError, SaleSpec, parse_time
from reconcile.products import Product
from reconcile.redis_state import SaleRedis

T = TypeVar("T")
Work = Callable[[asyncpg.Connection, AnyRedis], Coroutine[Any, Any, T]]


def _urls(f: Callable[..., Any]) -> Callable[..., Any]:
    """--database-url and --redis-url, on the group and again on each command (either place works).

    Not required by click, so `--help` works anywhere without them; `_run` asks for them.
    """
    f = click.option(
        "--redis-url", envvar="REDIS_URL", show_envvar=True, expose_value=False, callback=_keep_url,
        help="Redis URL.",
    )(f)  # fmt: skip
    return click.option(
        "--database-url", envvar="DATABASE_URL", show_envvar=True, expose_value=False, callback=_keep_url,
        help="PostgreSQL URL.",
    )(f)  # fmt: skip


def _keep_url(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Remember a URL in the contexts' shared meta: the first one found, or one typed on the command line."""
    if value is None or param.name is None:
        return
    key = f"flashgate.sale.{param.name}"
    if key not in ctx.meta or ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        ctx.meta[key] = value


def _url(ctx: click.Context, name: str, env: str) -> str:
    value = ctx.meta.get(f"flashgate.sale.{name}")
    if not value:
        flag = "--" + name.replace("_", "-")
        raise click.ClickException(f'{env} is not set ({flag} or env {env}; hint: eval "$(flashgate stack env)")')
    return str(value)


def _run(work: Work[T]) -> T:
    """Connect, run, close; every failure becomes one line and exit 1."""

    ctx = click.get_current_context()
    database_url, redis_url = _url(ctx, "database_url", "DATABASE_URL"), _url(ctx, "redis_url", "REDIS_URL")
    try:
        check(redis_url)
    except RedisUrlError as e:
        raise click.ClickException(str(e)) from e

    async def main() -> T:
        conn = await asyncpg.connect(database_url, timeout=10)
        client = connect(redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            return await work(conn, client)
        finally:
            await client.aclose()
            await conn.close()

    try:
        return asyncio.run(main())
    except SaleError as e:
        raise click.ClickException(str(e)) from e
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise click.ClickException(f"PostgreSQL: {e}") from e
    except RedisError as e:
        raise click.ClickException(f"Redis: {e}") from e
    except OSError as e:
        raise click.ClickException(f"cannot connect: {e}") from e


def _time(t: datetime | None) -> str:
    return t.isoformat(timespec="seconds") if t else "-"


def _status(p: Product) -> str:
    now = datetime.now().astimezone()
    if p.closed_at:
        return "closed"
    if p.starts_at and now < p.starts_at:
        return "scheduled"
    if p.ends_at and now >= p.ends_at:
        return "ended"
    return "open"


def _as_dict(v: store.SaleView) -> dict[str, Any]:
    p = v.product
    return {
        "sku": p.sku, "name": p.name, "status": _status(p), "units_on_sale": p.units_on_sale,
        "units_sold": p.units_sold, "per_user_limit": p.per_user_limit, "starts_at": _time(p.starts_at),
        "ends_at": _time(p.ends_at), "closed_at": _time(p.closed_at), "rate_per_s": p.rate_per_s, "burst": p.burst,
        "redis_stock": v.redis_stock, "redis_has_sale": v.redis_has_sale, "outbox_entries": v.outbox,
        "buyers": v.buyers,
    }  # fmt: skip


@click.group("sale")
@_urls
def sale_group() -> None:
    """Create and change sales: PostgreSQL first, then Redis (the reconciler repairs a half-way failure)."""


@sale_group.command("create")
@_urls
@click.option("--sku", required=True, help="SKU: 1–64 characters of A–Z, a–z, 0–9, dot, underscore or hyphen.")
@click.option("--name", required=True, help="Product name.")
@click.option("--stock", type=int, required=True, help="Units on sale (>= 0).")
@click.option("--per-user-limit", type=int, help="Units one buyer may get at most.")
@click.option("--starts-at", help="ISO 8601 start (default: now); no zone = UTC.")
@click.option("--ends-at", help="ISO 8601 end (default: open-ended).")
@click.option("--rate", type=float, help="Requests per second per buyer (GCRA); needs --burst.")
@click.option("--burst", type=int, help="Requests a buyer may send at once; needs --rate.")
def create_command(
    sku: str, name: str, stock: int, per_user_limit: int | None, starts_at: str | None, ends_at: str | None,
    rate: float | None, burst: int | None,
) -> None:  # fmt: skip
    """Open a new sale."""
    try:
        spec = SaleSpec(
            sku, name, stock, per_user_limit,
            parse_time(starts_at, "--starts-at") if starts_at else None,
            parse_time(ends_at, "--ends-at") if ends_at else None,
            rate, burst,
        )  # fmt: skip
    except SaleError as e:
        raise click.ClickException(str(e)) from e
    p = _run(lambda conn, client: store.create(conn, SaleRedis(client), spec))
    click.echo(f"sale {p.sku} created: {p.units_on_sale} units, {_status(p)}")


@sale_group.command("list")
@_urls
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(as_json: bool) -> None:
    """Every sale: status, units on sale, sold (PostgreSQL) and left (Redis)."""
    found = _run(lambda conn, client: store.views(conn, client, None))
    if as_json:
        click.echo(json.dumps([_as_dict(v) for v in found], indent=2))
        return
    rows = [("SKU", "STATUS", "ON SALE", "SOLD", "LEFT", "STARTS", "ENDS")]
    for v in found:
        p = v.product
        left = "?" if v.redis_stock is None else str(v.redis_stock)
        rows.append((p.sku, _status(p), str(p.units_on_sale), str(p.units_sold), left, _time(p.starts_at),
                     _time(p.effective_end)))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@sale_group.command("show")
@_urls
@click.argument("sku")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show_command(sku: str, as_json: bool) -> None:
    """One sale in full, with what Redis holds for it."""
    (view,) = _run(lambda conn, client: store.views(conn, client, [sku]))
    fields = _as_dict(view)
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    for key, value in fields.items():
        click.echo(f"{key:<16}{'-' if value is None else value}")


@sale_group.command("add-stock")
@_urls
@click.argument("sku")
@click.argument("units", type=int)
def add_stock_command(sku: str, units: int) -> None:
    """Put UNITS more on sale (safe while selling: Redis moves by a relative, atomic increment)."""
    p = _run(lambda conn, client: store.add_stock(conn, SaleRedis(client), sku, units))
    click.echo(f"sale {p.sku}: {p.units_on_sale} units on sale now (+{units})")


@sale_group.command("close")
@_urls
@click.argument("sku")
def close_command(sku: str) -> None:
    """End the sale now: the gate answers sale_ended from here on; recorded orders stay."""
    p = _run(lambda conn, client: store.close(conn, SaleRedis(client), sku))
    click.echo(f"sale {p.sku} closed at {_time(p.closed_at)}")
