"""Reading figures: a month's value per product, from the meters (never by rescanning events)."""

from __future__ import annotations

from voxmeter.domain.catalog import Product
from voxmeter.domain.meters import figure
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.ports import MeterReads, MonthMeters


def month_figures(
    ctx: Context[MeterReads], op: Operation, products: list[Product], month: int
) -> dict[str, int]:
    """Each product's figure for the month, in micro-units."""
    return month_figures_frozen(ctx, op, products, month)[0]


def month_figures_frozen(
    ctx: Context[MeterReads], op: Operation, products: list[Product], month: int
) -> tuple[dict[str, int], bool]:
    """Each product's figure for the month, and whether the month is closed (frozen), from one
    consistent read."""
    apis = tuple(p.api for p in products)
    levels = tuple(p.api for p in products if p.aggregation.is_level)
    return figures_of(ctx.storage.month_meters(op.id, month, apis, levels), products)


def figures_of(meters: MonthMeters, products: list[Product]) -> tuple[dict[str, int], bool]:
    """A month read's figures of `products`, and whether they are the frozen ones."""
    if meters.frozen is not None:
        return {p.api: meters.frozen.get(p.api, 0) for p in products}, True
    states, carried = meters.states, meters.carried
    figures = {
        p.api: figure(p.aggregation, states.get(p.api), carried.get(p.api)) for p in products
    }
    return figures, False


def past_month(ctx: Context[object], op: Operation, month: Month) -> int:
    """`month` as an index, if it has begun in the operation's timezone; future months are
    refused."""
    current = calendar(op.timezone).current_month(ctx.clock())
    if month.index > current:
        raise BadParameters(f"month {month} is in the future")
    return month.index
