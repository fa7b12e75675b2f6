"""Checking a batch against the rules and folding it into meter deltas, in one pass.

Ingest's hot loop: ten thousand events per request go through it, so it reads each event's
fields once, looks quantities up in a per-batch cache (a batch repeats few distinct values),
and folds as it goes. The rules themselves, and the explanation of a refused event, are in
`events.py`; `fold` in `meters.py` is the reference the folding here must equal.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

from voxmeter.domain.catalog import Aggregation, Catalog
from voxmeter.domain.events import (
    MAX_FUTURE_MICROS,
    IncomingEvent,
    Problem,
    UsageEvent,
    explain,
)
from voxmeter.domain.meters import DayKey, MeterKey, MeterState, roll_up
from voxmeter.domain.months import EPOCH, MICROSECOND, ZoneCalendar, month_of_day
from voxmeter.domain.quantities import MICRO, micro_or_invalid


class CheckedBatch(NamedTuple):
    events: list[UsageEvent]
    """The valid events, in arrival order."""
    problems: list[Problem]
    """Every problem found (not just the first); the batch is refused if there is any."""
    deltas: dict[MeterKey, MeterState]
    """`fold` of `events`: exact only for a batch without problems or repeated ids."""
    day_deltas: dict[DayKey, MeterState]
    """`fold` of `events` by local day, which `deltas` is rolled up from; exact likewise."""


def validate_batch(
    incoming: list[IncomingEvent],
    catalog: Catalog,
    calendar: ZoneCalendar,
    now_micros: int,
) -> tuple[list[UsageEvent], list[Problem]]:
    """Check every event; return the valid events and every problem found."""
    checked = check_and_fold(incoming, catalog, calendar, now_micros)
    return checked.events, checked.problems


def check_and_fold(
    incoming: list[IncomingEvent],
    catalog: Catalog,
    calendar: ZoneCalendar,
    now_micros: int,
) -> CheckedBatch:
    """Check every event and fold the valid ones into one delta state per (product, local
    day), rolled up into one per (product, month)."""
    events: list[UsageEvent] = []
    problems: list[Problem] = []
    deltas: dict[DayKey, MeterState] = {}
    aggregations = {p.api: p.aggregation for p in catalog}
    latest = min(now_micros + MAX_FUTURE_MICROS, calendar.max_micros)
    earliest = calendar.min_micros
    starts, first_month = calendar.month_starts, calendar.first_month - 1
    summed, rounded, count, level, unique = (
        Aggregation.SUM,
        Aggregation.SUM_ROUND_UP,
        Aggregation.COUNT,
        Aggregation.MAX,
        Aggregation.UNIQUE,
    )
    # A quantity's text -> its micro-units, or -1. Keyed by text, not by the Decimal: the text
    # determines the Decimal exactly (a NaN's too), and making it costs a fifth of hashing a
    # freshly decoded Decimal (a modular power).
    quantities: dict[str, int] = {}
    append = events.append
    get_delta = deltas.get
    new = tuple.__new__  # skips the named tuple's Python-level __new__: 2x faster
    month_days = calendar.month_days
    # The last event's local day, as [day_from, day_to) with its month and ordinal: events
    # mostly come in time order, so most fall in it and need no bisect at all.
    day_from = day_to = month = day = 0
    for index, raw in enumerate(incoming):
        product = raw.product
        aggregation = aggregations.get(product)
        micros = (raw.time - EPOCH) // MICROSECOND
        value = raw.quantity
        if value is None:
            # Only counts (one each) and unique products (a subject) may omit it.
            quantity = MICRO if aggregation is count or aggregation is unique else -1
        else:
            text = str(value)
            quantity = quantities.get(text, -2)
            if quantity == -2:
                quantity = quantities[text] = micro_or_invalid(value)
        subject = raw.subject
        if (
            aggregation is None
            or quantity < 0
            or not earliest <= micros <= latest
            or not raw.id.isprintable()
            or (subject is not None and not subject.isprintable())
            or (aggregation is count and (quantity % MICRO or not quantity))
            or (aggregation is unique and not subject)
        ):
            found = explain(index, raw, aggregation, micros, now_micros, calendar)
            # Fail closed: an event the fast check refused is never silently dropped.
            problems.extend(found or [Problem(index, "event", "is not a valid usage event")])
            continue
        if not day_from <= micros < day_to:
            after = bisect_right(starts, micros)  # the index of the month's end in `starts`
            month = first_month + after
            first_day, day_starts = month_days(month)
            nth = bisect_right(day_starts, micros) - 1
            day, day_from = first_day + nth, day_starts[nth]
            day_to = day_starts[nth + 1] if nth + 1 < len(day_starts) else starts[after]
        append(new(UsageEvent, (raw.id, product, micros, month, quantity, subject)))
        if problems:
            continue  # the batch is refused: no need to fold
        key = (product, day)
        state = get_delta(key)
        if state is None:
            state = deltas[key] = MeterState()
        if aggregation is summed or aggregation is count:
            state.total += quantity
        elif aggregation is rounded:
            state.total -= -quantity // MICRO * MICRO
        elif aggregation is level:
            if quantity > state.total:
                state.total = quantity
            if state.last_time is None or micros >= state.last_time:
                state.last_time = micros
                state.last_value = quantity
    return CheckedBatch(events, problems, roll_up(catalog, deltas, month_of_day), deltas)
