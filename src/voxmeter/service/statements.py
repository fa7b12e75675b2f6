"""Statements: drafts priced at read time while a month is open, finals stored when it closes."""

from __future__ import annotations

from typing import Protocol

from voxmeter.domain import statements
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.forecast import forecast
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.prices import Price
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.figures import month_figures_frozen, past_month
from voxmeter.service.ports import MeterReads, Prices, Statements, Tenancy


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
    if frozen:  # closed before statements were kept: priced now, from its frozen figures
        return final_statement(ctx.catalog, op, month, figures, prices)
    now = ctx.clock()
    start, end = calendar(op.timezone).window(month)
    forecasts = {  # only priced products add to the forecast total
        p.api: forecast(p.aggregation, figures[p.api], start, end, now)
        for p in products
        if p.api in prices
    }
    return statements.encode(
        statements.build(
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
    )


class AllStatementReads(StatementReads, Tenancy, Protocol):
    """What exporting every operation's statement needs."""


def all_statements(ctx: Context[AllStatementReads], month: Month) -> list[bytes]:
    """Every operation's statement of `month`, in the order operations are listed (server,
    name). A month still in the future for some operation's timezone is refused."""
    found: list[bytes] = []
    for op in ctx.storage.operations():
        found.append(month_statement(ctx, op, past_month(ctx, op, month)))
    return found
