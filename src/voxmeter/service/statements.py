"""Statements: drafts priced at read time while a month is open, finals stored when it closes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from voxmeter.domain import statements
from voxmeter.domain.catalog import Catalog, Product
from voxmeter.domain.forecast import forecast
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.prices import Price
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.figures import figures_of, month_figures_frozen, past_month
from voxmeter.service.ports import (
    BulkReads,
    MeterReads,
    MonthMeters,
    Prices,
    Statements,
    Tenancy,
)


class StatementReads(MeterReads, Prices, Statements, Protocol):
    """What reading a statement needs."""


def final_statement(
    catalog: Catalog, op: Operation, month: int, figures: dict[str, int], prices: dict[str, Price]
) -> bytes:
    """The encoded final statement of a closed month's frozen figures."""
    return statements.encode(
        statements.build(
            operation=op.name,
            server=op.server,
            month=str(Month.from_index(month)),
            final=True,
            currency=op.currency,
            products=list(catalog),
            figures=figures,
            forecasts=figures,
            prices=prices,
        )
    )


def month_statement(ctx: Context[StatementReads], op: Operation, month: int) -> bytes:
    """The month's statement, encoded: the stored bytes once the month has closed, else a draft
    priced now (prices, late events and the forecast still change it)."""
    stored = ctx.storage.final_statement(op.id, month)
    if stored is not None:
        return stored
    products = list(ctx.catalog)
    figures, frozen = month_figures_frozen(ctx, op, products, month)
    prices = ctx.storage.prices_for(op.id, op.currency)
    return _priced(ctx.catalog, op, month, figures, frozen, prices, ctx.clock())


def _priced(
    catalog: Catalog,
    op: Operation,
    month: int,
    figures: dict[str, int],
    frozen: bool,
    prices: dict[str, Price],
    now: int,
) -> bytes:
    if frozen:  # closed before statements were kept: priced now, from its frozen figures
        return final_statement(catalog, op, month, figures, prices)
    return statements.encode(_draft(catalog, op, month, figures, prices, now))


def _draft(
    catalog: Catalog,
    op: Operation,
    month: int,
    figures: dict[str, int],
    prices: dict[str, Price],
    now: int,
) -> statements.Statement:
    products = list(catalog)
    start, end = calendar(op.timezone).window(month)
    forecasts = {  # only priced products add to the forecast total
        p.api: forecast(p.aggregation, figures[p.api], start, end, now)
        for p in products
        if p.api in prices
    }
    return statements.build(
        operation=op.name,
        server=op.server,
        month=str(Month.from_index(month)),
        final=False,
        currency=op.currency,
        products=products,
        figures=figures,
        forecasts=forecasts,
        prices=prices,
    )


class AllStatementReads(StatementReads, Tenancy, BulkReads, Protocol):
    """What exporting every operation's statement needs."""


def all_statements(ctx: Context[AllStatementReads], month: Month) -> list[bytes]:
    """Every operation's statement of `month`, in the order operations are listed (server,
    name), the same as `month_statement` gives each, read in a few statements whatever the
    number of operations. A month still in the future for some operation's timezone is
    refused."""
    return [s if isinstance(s, bytes) else statements.encode(s) for s in _every(ctx, month)]


@dataclass(frozen=True, slots=True)
class _Month:
    """What pricing every operation's month needs, read in a few statements."""

    ops: list[Operation]
    products: list[Product]
    meters: dict[int, MonthMeters]
    finals: dict[int, bytes]
    table: dict[tuple[int | None, str], dict[str, Price]]
    now: int

    def prices(self, op: Operation) -> dict[str, Price]:
        """The operation's prices in its currency: its own where it has one, else the
        default."""
        own = self.table.get((op.id, op.currency), {})
        return {**self.table.get((None, op.currency), {}), **own}


def _read_month(ctx: Context[AllStatementReads], month: Month) -> _Month:
    ops = ctx.storage.operations()
    for op in ops:
        past_month(ctx, op, month)
    products = list(ctx.catalog)
    levels = tuple(p.api for p in products if p.aggregation.is_level)
    every = ctx.storage.every_month_meters(month.index, levels)
    finals = ctx.storage.final_statements(month.index)
    table: dict[tuple[int | None, str], dict[str, Price]] = {}
    for scope, price in ctx.storage.all_prices():
        table.setdefault((scope, price.currency), {})[price.product] = price
    return _Month(ops, products, every, finals, table, ctx.clock())


def _every(ctx: Context[AllStatementReads], month: Month) -> list[bytes | statements.Statement]:
    """Stored (and frozen-priced) statements as bytes, drafts as Statements."""
    read = _read_month(ctx, month)
    found: list[bytes | statements.Statement] = []
    for op in read.ops:
        stored = read.finals.get(op.id)
        if stored is not None:
            found.append(stored)
            continue
        figures, frozen = figures_of(read.meters.get(op.id, _NOTHING), read.products)
        prices = read.prices(op)
        if frozen:
            found.append(final_statement(ctx.catalog, op, month.index, figures, prices))
        else:
            found.append(_draft(ctx.catalog, op, month.index, figures, prices, read.now))
    return found


@dataclass(frozen=True, slots=True)
class Totals:
    """An operation's statement of a month in short: what `month_statement` gives as
    `status`, `total` and `forecast_total`, and how many products have a figure other than 0."""

    operation: Operation
    status: str
    total: str
    forecast_total: str
    products_used: int


def every_total(ctx: Context[AllStatementReads], month: Month) -> list[Totals]:
    """Every operation's statement totals of `month`, in the order operations are listed:
    read like `all_statements`, but only priced products are charged and no line is
    written."""
    read = _read_month(ctx, month)
    found: list[Totals] = []
    for op in read.ops:
        stored = read.finals.get(op.id)
        if stored is not None:
            final = statements.decode(stored)
            used = sum(1 for line in final.lines if line.items != "0")
            found.append(Totals(op, final.status, final.total, final.forecast_total, used))
            continue
        figures, frozen = figures_of(read.meters.get(op.id, _NOTHING), read.products)
        prices = read.prices(op)
        forecasts = figures
        if not frozen:
            start, end = calendar(op.timezone).window(month.index)
            forecasts = {
                p.api: forecast(p.aggregation, figures[p.api], start, end, read.now)
                for p in read.products
                if p.api in prices
            }
        total, forecast_total = statements.totals(
            final=frozen,
            currency=op.currency,
            products=read.products,
            figures=figures,
            forecasts=forecasts,
            prices=prices,
        )
        status = statements.FINAL if frozen else statements.DRAFT
        used = sum(1 for value in figures.values() if value != 0)
        found.append(Totals(op, status, total, forecast_total, used))
    return found


_NOTHING = MonthMeters(None, {}, {})
"""The month of an operation that has never metered anything."""
