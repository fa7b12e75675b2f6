"""Voiding events and listing them for reconciliation (docs/api.md, Voids and Listing)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from voxmeter.domain import audit
from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.events import is_possible_id
from voxmeter.domain.meters import MeterState, contribution, fold
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.quantities import MICRO
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters, Conflict, MirrorUsage, NotFound
from voxmeter.service.alerts import evaluate_alerts
from voxmeter.service.audit import record
from voxmeter.service.context import Context
from voxmeter.service.months import closed_set
from voxmeter.service.ports import EventLog, StoredEvent, Writer, WriteTransaction
from voxmeter.service.windows import MAX_WINDOW_DAYS, check_window, window_micros

MAX_PAGE = 60_000
__all__ = ["MAX_PAGE", "MAX_WINDOW_DAYS", "Page", "check_listing", "list_events", "void_event"]


@dataclass(frozen=True, slots=True)
class Page:
    events: list[StoredEvent]
    zone: ZoneInfo
    """The operation's timezone, in which event times are shown."""
    next_after: tuple[int, int] | None
    """Where the next page starts ((time, seq) of this page's last event); None on the last."""


def void_event(ctx: Context[Writer], op: Operation, event_id: str) -> tuple[StoredEvent, bool]:
    """Void one event: it leaves every figure, stays listed, and its id stays taken.

    Returns the event and whether this call voided it (False: it was already void).
    """
    if op.mirror:
        raise MirrorUsage
    if not is_possible_id(event_id):  # never stored; some databases can't even hold it (NUL)
        raise NotFound(event_id)
    cal = calendar(op.timezone)
    with ctx.storage.write() as tx:
        tx.exclusive(op.id)
        event = tx.event_for_void(op.id, event_id)
        if event is None:
            raise NotFound(event_id)
        if event.voided is not None:
            return event, False
        month = cal.month_of(event.time)
        if closed_set(ctx, tx, op, {month}):
            raise Conflict(str(Month.from_index(month)))
        now = ctx.clock()
        tx.mark_voided(op.id, event.seq, now)
        day = cal.day_of(event.time)
        month_state = _corrected(ctx, tx, op, event, (month, *cal.window(month), False))
        day_state = _corrected(ctx, tx, op, event, (day, *cal.day_window(day), True))
        tx.save_meters(op.id, {(event.product, month): month_state})
        tx.save_day_meters(op.id, {(event.product, day): day_state})
        evaluate_alerts(tx, ctx, op, (month,), (event.product,))
        _record_void(tx, ctx, op, event, month)
    return replace(event, voided=now), True


def _corrected(
    ctx: Context[object],
    tx: WriteTransaction,
    op: Operation,
    event: StoredEvent,
    period: tuple[int, int, int, bool],
) -> MeterState:
    """A month's or a day's meter without a voided event, by the same rules for both.
    `period` is (month or day, its window's start and end, whether it is a day). A level is
    refolded from the period's remaining events; a sum loses the event's contribution; a
    unique count loses its subject if no other event of the period has it."""
    index, start, end, is_day = period
    key = (event.product, index)
    product = ctx.catalog.get(event.product)
    aggregation = product.aggregation if product else Aggregation.SUM
    if aggregation is Aggregation.MAX:
        remaining = tx.month_events(op.id, event.product, index, start, end)
        return fold(ctx.catalog, remaining, lambda _: index).get(key, MeterState())
    stored = (tx.day_meters if is_day else tx.meters)(op.id, [key]).get(key, MeterState())
    if aggregation is Aggregation.UNIQUE:
        remove = tx.remove_day_subject if is_day else tx.remove_subject
        if event.subject is not None and remove(op.id, event.product, index, event.subject):
            return MeterState(stored.total - MICRO)
        return stored
    return MeterState(stored.total - contribution(aggregation, event.quantity))


def _record_void(
    tx: WriteTransaction, ctx: Context[object], op: Operation, event: StoredEvent, month: int
) -> None:
    details = {"event": event.id, "product": event.product, "month": str(Month.from_index(month))}
    record(tx, ctx, audit.EVENT_VOID, op.id, details)


def check_listing(
    ctx: Context[object],
    start_local: datetime,
    end_local: datetime,
    product: str | None,
    limit: int,
) -> None:
    """The listing's own rules: a window of at most MAX_WINDOW_DAYS, a known product, a page
    size up to MAX_PAGE."""
    check_window(start_local, end_local)
    if product is not None and product not in ctx.catalog:
        raise BadParameters(f"unknown product {product!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise BadParameters(f"limit must be between 1 and {MAX_PAGE}")


def list_events(
    ctx: Context[EventLog],
    op: Operation,
    start_local: datetime,
    end_local: datetime,
    product: str | None,
    after: tuple[int, int] | None,
    limit: int = MAX_PAGE,
) -> Page:
    """Raw events with `start_local <= time <= end_local` (naive, in the operation timezone,
    whole seconds), oldest first, after the (time, seq) position `after`."""
    check_listing(ctx, start_local, end_local, product, limit)
    cal = calendar(op.timezone)
    start, end = window_micros(op, start_local, end_local)
    rows = list(ctx.storage.events(op.id, start, end, product, after, limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = (rows[-1].time, rows[-1].seq) if more else None
    return Page(rows, cal.zone, next_after)
