"""What the dashboard shows, read through the same service functions as the API (figures,
daily breakdown, forecast, statement), so every figure equals the API's for the same month."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from voxmeter.domain import statements
from voxmeter.domain.catalog import Product
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.statements import Statement
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.daily import daily_figures
from voxmeter.service.forecast import month_forecast
from voxmeter.service.ports import AlertSummary, DayMeterReads
from voxmeter.service.statements import (
    AllStatementReads,
    StatementReads,
    every_total,
    month_statement,
)


class OperationViewReads(StatementReads, DayMeterReads, Protocol):
    """What an operation's view reads."""


@dataclass(frozen=True, slots=True)
class ProductLine:
    """One product's month: figure and forecast as the API writes them, its statement amount,
    and its figure per day (for the chart)."""

    product: Product
    items: str
    forecast: str
    amount: str
    daily: list[Decimal]


@dataclass(frozen=True, slots=True)
class OperationView:
    operation: Operation
    month: Month
    days: list[date]
    lines: list[ProductLine]
    statement: Statement


def operation_view(ctx: Context[OperationViewReads], op: Operation, month: int) -> OperationView:
    """An operation's month, every catalog product in catalog order."""
    products = list(ctx.catalog)
    forecasts = month_forecast(ctx, op, month, ctx.clock())
    days = daily_figures(ctx, op, products, month)
    statement = statements.decode(month_statement(ctx, op, month))
    amounts = {line.api: line.amount for line in statement.lines}
    lines = [
        ProductLine(
            product=f.product,
            items=format_micro(f.items),
            forecast=format_micro(f.forecast),
            amount=amounts[f.product.api],
            daily=[Decimal(format_micro(v)) for v in days.figures[f.product.api]],
        )
        for f in forecasts
    ]
    return OperationView(op, Month.from_index(month), days.days, lines, statement)


@dataclass(frozen=True, slots=True)
class OverviewRow:
    """One operation in the admin overview."""

    operation: Operation
    status: str
    products_used: int
    """Catalog products with a figure other than zero in the month."""
    total: Decimal
    forecast_total: Decimal
    stale: bool = False
    """A mirror whose last successful sweep is older than its staleness limit."""


SORT_KEYS = ("name", "server", "currency", "products", "total", "forecast", "status")


def overview(
    ctx: Context[AllStatementReads],
    month: Month,
    sort: str = "name",
    descending: bool = False,
    stale: Collection[int] = (),
) -> list[OverviewRow]:
    """Every operation's month, from one bulk read of every statement; sorted by `sort` (one of
    SORT_KEYS; amounts compare as numbers whatever their currency). `stale`: the ids of the
    operations that are stale mirrors, marked so."""
    rows = [
        OverviewRow(
            operation=t.operation,
            status=t.status,
            products_used=t.products_used,
            total=Decimal(t.total),
            forecast_total=Decimal(t.forecast_total or t.total),
            stale=t.operation.id in stale,
        )
        for t in every_total(ctx, month)
    ]
    keys = {
        "name": lambda r: (r.operation.name, r.operation.server),
        "server": lambda r: (r.operation.server, r.operation.name),
        "currency": lambda r: (r.operation.currency, r.operation.name),
        "products": lambda r: (r.products_used, r.operation.name),
        "total": lambda r: (r.total, r.operation.name),
        "forecast": lambda r: (r.forecast_total, r.operation.name),
        "status": lambda r: (r.status, r.operation.name),
    }
    return sorted(rows, key=keys[sort], reverse=descending)


def overview_month(ctx: Context[AllStatementReads]) -> Month:
    """The admin's default month: the earliest current month among the operations'
    timezones (so it is the current month for every one of them), UTC's when there are none."""
    now = ctx.clock()
    zones = {op.timezone for op in ctx.storage.operations()} or {"UTC"}
    return Month.from_index(min(calendar(zone).current_month(now) for zone in zones))


class NoNotices:
    """The dashboard's notices where alerts and mirrors are not kept: nothing to show."""

    def alert_summaries(self, operation_id: int) -> list[AlertSummary]:
        return []

    def last_synced(self, operation_id: int) -> int | None:
        return None

    def is_stale(self, operation_id: int, now: int) -> bool:
        return False

    def stale_mirrors(self, now: int) -> set[int]:
        return set()
