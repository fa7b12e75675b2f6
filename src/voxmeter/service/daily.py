"""The daily breakdown of a month: each local day's figure per product, from the day meters
(never by rescanning events), so reading a month costs the same at ten events and ten million."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from voxmeter.domain.catalog import Product
from voxmeter.domain.meters import day_figures
from voxmeter.domain.months import calendar
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.ports import DayMeterReads


@dataclass(frozen=True, slots=True)
class Days:
    """A month's days shown, and each product's figure per day (micro-units), in the order
    the products were asked for."""

    days: list[date]
    figures: dict[str, list[int]]


def month_days(ctx: Context[object], op: Operation, month: int) -> tuple[int, int]:
    """The days shown for a month (date ordinals, both included): from the 1st to today in the
    current month, to the last day in a past one."""
    cal = calendar(op.timezone)
    now = ctx.clock()
    first, starts = cal.month_days(month)
    last = first + len(starts) - 1
    if month >= cal.current_month(now):
        last = min(last, cal.today(now).toordinal())
    return first, last


def daily_figures(
    ctx: Context[DayMeterReads], op: Operation, products: list[Product], month: int
) -> Days:
    """Every day's figure of each product."""
    first, last = month_days(ctx, op, month)
    apis = tuple(p.api for p in products)
    levels = tuple(p.api for p in products if p.aggregation.is_level)
    meters = ctx.storage.day_states(op.id, first, last, apis, levels)
    days = range(first, last + 1)
    figures = {
        p.api: day_figures(
            p.aggregation,
            [meters.states.get((p.api, day)) for day in days],
            meters.carried.get(p.api),
        )
        for p in products
    }
    return Days([date.fromordinal(day) for day in days], figures)
