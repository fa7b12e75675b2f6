"""`voxmeter price set|list|delete`: deployment defaults and per-operation overrides."""

from __future__ import annotations

import click
from rich.table import Table

from voxmeter.domain.prices import Price, Scheme
from voxmeter.domain.quantities import format_micro
from voxmeter.entrypoints.cli.admin import console
from voxmeter.entrypoints.cli.common import db_option, friendly, open_context
from voxmeter.service import prices, tenancy

_operation = click.option(
    "--operation",
    "operation_name",
    default=None,
    help="An operation's own price (default: the deployment's default price).",
)
_server = click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)


def tiers_text(price: Price) -> str:
    """`1000:0.05 inf:0.03`, or the unit price alone."""
    if price.scheme is Scheme.UNIT:
        return format_micro(price.tiers[0].unit_price)
    return " ".join(
        f"{'inf' if t.upto is None else format_micro(t.upto)}:{format_micro(t.unit_price)}"
        for t in price.tiers
    )


@click.group()
def price() -> None:
    """Set, list and delete prices."""


@price.command("set")
@click.option("--product", required=True, help="The product's api value.")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. USD.")
@click.option("--unit-price", default=None, help="One price per billable unit.")
@click.option(
    "--tier",
    "tiers",
    multiple=True,
    help="Graduated tier UPTO:PRICE (repeat; the last one inf:PRICE).",
)
@click.option(
    "--volume-tier",
    "volume_tiers",
    multiple=True,
    help="Volume tier UPTO:PRICE (repeat; the last one inf:PRICE).",
)
@click.option("--included", default=None, help="Free units, counted first.")
@_operation
@_server
@db_option
@friendly
def price_set(
    product: str,
    currency: str,
    unit_price: str | None,
    tiers: tuple[str, ...],
    volume_tiers: tuple[str, ...],
    included: str | None,
    operation_name: str | None,
    server: str | None,
    db: str,
) -> None:
    """Set the price of a product in a currency (replacing the one there was)."""
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server) if operation_name else None
    made = prices.set_price(
        ctx, op, product, currency, unit_price, list(tiers), list(volume_tiers), included
    )
    scope = "default" if op is None else f"{op.server}/{op.name}"
    click.echo(
        f"price of {made.product} in {made.currency} for {scope}: {made.scheme.value} "
        f"{tiers_text(made)}, {format_micro(made.included)} included"
    )


@price.command("list")
@_operation
@_server
@db_option
@friendly
def price_list(operation_name: str | None, server: str | None, db: str) -> None:
    """List prices: every one, or the defaults and one operation's own."""
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server) if operation_name else None
    names = {o.id: f"{o.server}/{o.name}" for o in ctx.storage.operations()}
    table = Table("scope", "product", "currency", "scheme", "price", "included")
    for scope, p in prices.list_prices(ctx, op):
        table.add_row(
            "default" if scope is None else names.get(scope, str(scope)),
            p.product,
            p.currency,
            p.scheme.value,
            tiers_text(p),
            format_micro(p.included),
        )
    console().print(table)


@price.command("delete")
@click.option("--product", required=True, help="The product's api value.")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. USD.")
@_operation
@_server
@db_option
@friendly
def price_delete(
    product: str, currency: str, operation_name: str | None, server: str | None, db: str
) -> None:
    """Delete a price (an operation's own: the default applies again)."""
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server) if operation_name else None
    prices.delete_price(ctx, op, product, currency)
    scope = "default" if op is None else f"{op.server}/{op.name}"
    click.echo(f"deleted the price of {product} in {currency} for {scope}")
