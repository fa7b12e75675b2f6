"""Forecasts of a month's figures, read from the meters like the figures themselves."""

from __future__ import annotations

from dataclasses import dataclass

from voxmeter.domain.catalog import Product
from voxmeter.domain.forecast import forecast
from voxmeter.domain.months import calendar
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.figures import month_figures
from voxmeter.service.ports import MeterReads


@dataclass(frozen=True, slots=True)
class Forecast:
    """One product's figure so far and where it is heading, in micro-units."""

    product: Product
    items: int
    forecast: int


def month_forecast(ctx: Context[MeterReads], op: Operation, month: int, now: int) -> list[Forecast]:
    """Every catalog product's forecast for `month` as seen at `now` (the figure itself once
    the month has ended)."""
    products = list(ctx.catalog)
    figures = month_figures(ctx, op, products, month)
    start, end = calendar(op.timezone).window(month)
    return [
        Forecast(p, figures[p.api], forecast(p.aggregation, figures[p.api], start, end, now))
        for p in products
    ]
