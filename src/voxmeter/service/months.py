"""Month status and closing (docs/behaviour.md, Months)."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from voxmeter.domain import audit
from voxmeter.domain.audit import SYSTEM
from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.meters import MeterState, figure
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service.audit import record
from voxmeter.service.context import Context
from voxmeter.service.ports import Months, MonthWrites, Prices, Tenancy, Writer
from voxmeter.service.statements import final_statement


class Closing(Writer, Prices, Protocol):
    """What closing a month reads and writes: its figures, and its statement at the prices of
    the moment."""


class DueMonths(Tenancy, Months, Closing, Protocol):
    """What closing due months reads and writes."""


def is_closed_by_grace(ctx: Context[object], op: Operation, month: int, now: int) -> bool:
    """A month closes by itself at local midnight `grace_days` after it ends."""
    return now >= calendar(op.timezone).closes_at(month, ctx.grace_days)


def closed_set(ctx: Context[object], tx: MonthWrites, op: Operation, months: set[int]) -> set[int]:
    """Which of these months are closed: up to the latest explicitly closed month (closing a
    month closes every earlier one), or by the grace period."""
    now = ctx.clock()
    through = max(tx.closed_months(op.id), default=-1)
    return {m for m in months if m <= through or is_closed_by_grace(ctx, op, m, now)}


def close_month(
    ctx: Context[Closing], op: Operation, month: Month, *, by_grace: bool = False
) -> list[Month]:
    """Close `month` and every earlier open month, freezing each one's figures and storing its
    final statement (priced once, here, at the operation's prices of the moment).

    Months close in order so that a closed month's carried-in levels can never change.
    Everything the frozen figures depend on, the first metered month included, is read inside
    the transaction that freezes them, after it has the operation to itself: a batch that
    committed just before is in them, and one that comes after finds the months closed.
    Returns the months newly closed (empty when already closed). A close that closes
    anything is recorded in the audit log, by `ctx.actor`, `by_grace` saying the grace period
    ended (the server's own close).
    """
    now = ctx.clock()
    current = calendar(op.timezone).current_month(now)
    if month.index >= current:
        raise BadParameters(f"month {month} has not ended yet")
    products = list(ctx.catalog)
    prices = ctx.storage.prices_for(op.id, op.currency)
    newly: list[Month] = []
    with ctx.storage.write() as tx:
        tx.exclusive(op.id)
        first = tx.first_month(op.id)
        start = month.index if first is None else min(first, month.index)
        closed = tx.closed_months(op.id)
        carried: dict[str, int] = {}
        for index in range(start, month.index + 1):
            states = tx.meters(op.id, [(p.api, index) for p in products])
            totals: dict[str, int] = {}
            for p in products:
                state = states.get((p.api, index))
                totals[p.api] = figure(p.aggregation, state, carried.get(p.api))
                if p.aggregation is Aggregation.MAX:
                    _carry(carried, p.api, state)
            if index not in closed:
                tx.freeze(op.id, index, totals, now)
                tx.store_statement(
                    op.id, index, final_statement(ctx.catalog, op, index, totals, prices)
                )
                newly.append(Month.from_index(index))
        if newly:
            details = {
                "month": str(month),
                "closed": [str(m) for m in newly],
                "by": "grace" if by_grace else "request",
            }
            record(tx, ctx, audit.MONTH_CLOSE, op.id, details)
    return newly


def _carry(carried: dict[str, int], api: str, state: MeterState | None) -> None:
    if state is not None and state.last_time is not None:
        carried[api] = state.last_value


def close_due_months(ctx: Context[DueMonths]) -> dict[str, list[Month]]:
    """Freeze every month whose grace period has ended, for every operation."""
    now = ctx.clock()
    done: dict[str, list[Month]] = {}
    ctx = replace(ctx, actor=SYSTEM)  # the server closes these by itself, whoever runs it
    for op in ctx.storage.operations():
        cal = calendar(op.timezone)
        due = cal.current_month(now) - 1
        while due >= 0 and not is_closed_by_grace(ctx, op, due, now):
            due -= 1
        # Only a hint of whether there is anything to close: close_month reads it again inside
        # its transaction (a batch may commit in between).
        first = ctx.storage.first_month(op.id)
        if first is None or due < first:
            continue
        if ctx.storage.frozen_figures(op.id, due) is None:
            done[f"{op.server}/{op.name}"] = close_month(
                ctx, op, Month.from_index(due), by_grace=True
            )
    return done
