"""Voiding events and listing them for reconciliation (docs/api.md, Voids and Listing)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.events import is_possible_id
from voxmeter.domain.meters import MeterState, contribution, fold
from voxmeter.domain.months import Month, ZoneCalendar, calendar
from voxmeter.domain.quantities import MICRO
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters, Conflict, NotFound
from voxmeter.service.context import Context
from voxmeter.service.months import closed_set
from voxmeter.service.ports import StoredEvent

MAX_WINDOW_DAYS = 31
MAX_PAGE = 60_000
_DATE_FORMAT = "%Y%m%d%H%M%S"
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Page:
    events: list[StoredEvent]
    zone: ZoneInfo
    """The operation's timezone, in which event times are shown."""
    next_cursor: str | None


def void_event(ctx: Context, op: Operation, event_id: str) -> tuple[StoredEvent, bool]:
    """Void one event: it leaves every figure, stays listed, and its id stays taken.

    Returns the event and whether this call voided it (False: it was already void).
    """
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
        product = ctx.catalog.get(event.product)
        aggregation = product.aggregation if product else Aggregation.SUM
        key = (event.product, month)
        state = tx.meters(op.id, [key]).get(key, MeterState())
        if aggregation is Aggregation.MAX:
            start, end = cal.window(month)
            remaining = tx.month_events(op.id, event.product, month, start, end)
            state = fold(ctx.catalog, remaining).get(key, MeterState())
        elif aggregation is Aggregation.UNIQUE:
            if event.subject is not None and tx.remove_subject(
                op.id, event.product, month, event.subject
            ):
                state = MeterState(state.total - MICRO)
        else:
            state = MeterState(state.total - contribution(aggregation, event.quantity))
        tx.save_meters(op.id, {key: state})
    return replace(event, voided=now), True


def parse_local(text: str | None, name: str) -> datetime:
    if not text:
        raise BadParameters(f"{name} is required (YYYYmmddHHiiss)")
    try:
        if len(text) != 14 or not text.isdigit():
            raise ValueError(text)
        return datetime.strptime(text, _DATE_FORMAT)
    except ValueError as exc:
        raise BadParameters(f"{name} must be YYYYmmddHHiiss") from exc


def encode_cursor(time: int, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{time}:{seq}".encode()).decode().rstrip("=")


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # what every storage keeps times and seqs in


def decode_cursor(text: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        time, seq = (int(part) for part in raw.split(":"))
        if not (_INT64_MIN <= time <= _INT64_MAX and 0 <= seq <= _INT64_MAX):
            raise ValueError("out of range")
        return time, seq
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadParameters("cursor is not one this server issued") from exc


def list_events(
    ctx: Context,
    op: Operation,
    date_ini: str | None,
    date_end: str | None,
    product: str | None,
    cursor: str | None,
    limit: int = MAX_PAGE,
) -> Page:
    """Raw events with `date_ini <= time <= date_end` (operation timezone), oldest first."""
    cal = calendar(op.timezone)
    start_local, end_local = parse_local(date_ini, "date_ini"), parse_local(date_end, "date_end")
    if end_local < start_local:
        raise BadParameters("date_end is before date_ini")
    if (end_local - start_local).total_seconds() > MAX_WINDOW_DAYS * 86400:
        raise BadParameters(f"the window is longer than {MAX_WINDOW_DAYS} days")
    if product is not None and product not in ctx.catalog:
        raise BadParameters(f"unknown product {product!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise BadParameters(f"limit must be between 1 and {MAX_PAGE}")
    # [first moment the clock reads date_ini, first moment it reads past date_end): the end
    # second is included, and windows that meet (end X, next start X + 1 s) share one bound.
    start = cal.local_micros(start_local)
    end = _after(cal, end_local)
    after = decode_cursor(cursor) if cursor else None
    rows = list(ctx.storage.events(op.id, start, end, product, after, limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].time, rows[-1].seq) if more else None
    return Page(rows, cal.zone, next_cursor)


def _after(cal: ZoneCalendar, last: datetime) -> int:
    """The first instant at which the clock reads a time after the second `last`."""
    try:
        return cal.local_micros(last + _SECOND)
    except OverflowError:  # 9999-12-31 23:59:59: no later wall time exists
        return cal.local_micros(last) + 1_000_000
