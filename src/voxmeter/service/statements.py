"""Statements: drafts priced at read time while a month is open, finals stored when it closes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from voxmeter.domain import statements
from voxmeter.domain.catalog import Catalog
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


Reading = bytes | statements.Draft
"""A month's statement as read: a final one's bytes, or a draft finished at the instant it is
sent (`encoded`)."""


def encoded(reading: Reading, now: int) -> bytes:
    """The statement's bytes, a draft's forecast taken at `now`."""
    return reading if isinstance(reading, bytes) else reading.body(now)


def decoded(reading: Reading, now: int) -> statements.Statement:
    """The statement itself, a draft's forecast taken at `now`."""
    return statements.decode(reading) if isinstance(reading, bytes) else reading.at(now)


def month_statement(ctx: Context[StatementReads], op: Operation, month: int) -> bytes:
    """The month's statement, encoded: the stored bytes once the month has closed, else a draft
    priced now (prices, late events and the forecast still change it)."""
    return encoded(month_reading(ctx, op, month), ctx.clock())


def month_reading(ctx: Context[StatementReads], op: Operation, month: int) -> Reading:
    """The month's statement as stored, or its draft from the figures and prices as committed
    (valid for as long as `ctx.storage.version()` stays)."""
    stored = ctx.storage.final_statement(op.id, month)
    if stored is not None:
        return stored
    products = list(ctx.catalog)
    figures, frozen = month_figures_frozen(ctx, op, products, month)
    prices = ctx.storage.prices_for(op.id, op.currency)
    return _priced(ctx.catalog, op, month, figures, frozen, prices)


def _priced(
    catalog: Catalog,
    op: Operation,
    month: int,
    figures: dict[str, int],
    frozen: bool,
    prices: dict[str, Price],
) -> Reading:
    if frozen:  # closed before statements were kept: priced now, from its frozen figures
        return final_statement(catalog, op, month, figures, prices)
    start, end = calendar(op.timezone).window(month)
    return statements.draft(
        operation=op.name,
        server=op.server,
        month=str(Month.from_index(month)),
        currency=op.currency,
        products=list(catalog),
        figures=figures,
        prices=prices,
        start=start,
        end=end,
    )


class AllStatementReads(StatementReads, Tenancy, BulkReads, Protocol):
    """What exporting every operation's statement needs."""


def all_statements(ctx: Context[AllStatementReads], month: Month) -> list[bytes]:
    """Every operation's statement of `month`, encoded (see `all_readings`)."""
    now = ctx.clock()
    return [encoded(r, now) for r in all_readings(ctx, month)]


def all_readings(ctx: Context[AllStatementReads], month: Month) -> list[Reading]:
    """Every operation's statement of `month` (see `_every_reading`)."""
    return [reading for _, reading in _every_reading(ctx, month)]


def _every_reading(
    ctx: Context[AllStatementReads], month: Month
) -> list[tuple[Operation, Reading]]:
    """Every operation's statement of `month`, in the order operations are listed (server,
    name), the same as `month_reading` gives each, read in a few statements whatever the
    number of operations. A month still in the future for some operation's timezone is
    refused."""
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
    found: list[tuple[Operation, Reading]] = []
    for op in ops:
        stored = finals.get(op.id)
        if stored is not None:
            found.append((op, stored))
            continue
        figures, frozen = figures_of(every.get(op.id, _NOTHING), products)
        prices = {**table.get((None, op.currency), {}), **table.get((op.id, op.currency), {})}
        found.append((op, _priced(ctx.catalog, op, month.index, figures, frozen, prices)))
    return found


@dataclass(frozen=True, slots=True)
class Totals:
    """An operation's statement of a month in short: its `status`, `total` and
    `forecast_total`, and how many products have a figure other than 0."""

    operation: Operation
    status: str
    total: str
    forecast_total: str
    products_used: int


def every_total(ctx: Context[AllStatementReads], month: Month) -> list[Totals]:
    """Every operation's statement totals of `month`, in the order operations are listed, read
    as `all_statements` reads them (the same figures, prices and forecast instant)."""
    now = ctx.clock()
    found: list[Totals] = []
    for op, reading in _every_reading(ctx, month):
        statement = decoded(reading, now)
        used = sum(1 for line in statement.lines if line.items != "0")
        found.append(Totals(op, statement.status, statement.total, statement.forecast_total, used))
    return found


_NOTHING = MonthMeters(None, {}, {})
"""The month of an operation that has never metered anything."""
