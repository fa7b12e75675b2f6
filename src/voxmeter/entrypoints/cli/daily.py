"""`voxmeter daily`: an operation's daily breakdown of a month, read from the database as the
daily endpoint reads it (docs/api.md, Daily breakdown)."""

from __future__ import annotations

import click

from voxmeter.domain.catalog import Product
from voxmeter.domain.months import calendar
from voxmeter.domain.quantities import format_micro
from voxmeter.entrypoints.cli.common import db_option, friendly, open_context
from voxmeter.entrypoints.wire.months import resolve_month
from voxmeter.errors import ConfigError
from voxmeter.service import tenancy
from voxmeter.service.daily import daily_figures


@click.command()
@click.option("--operation", "operation_name", required=True, help="The operation's name.")
@click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)
@click.option("--month", "month_text", default=None, help="YYYY-MM (default: the current month).")
@click.option("--api", default="all", show_default=True, help="One product (api value), or all.")
@db_option
@friendly
def daily(
    operation_name: str, server: str | None, month_text: str | None, api: str, db: str
) -> None:
    """Each local day's figure of a month, one line per product and day (api, date, items)."""
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server)
    products: list[Product]
    if api == "all":
        products = list(ctx.catalog)
    else:
        product = ctx.catalog.get(api)
        if product is None:
            raise ConfigError(f"unknown product {api!r}")
        products = [product]
    requested = resolve_month(ctx, op, month_text)
    month = calendar(op.timezone).current_month(ctx.clock()) if requested is None else requested
    found = daily_figures(ctx, op, products, month)
    for product in products:
        for day, micros in zip(found.days, found.figures[product.api], strict=True):
            click.echo(f"{product.api}\t{day.isoformat()}\t{format_micro(micros)}")
