"""Meters: how a month's events fold into one figure (docs/products.md, Billing rules).

A `MeterState` is what storage keeps per (operation, product, month), and per (operation,
product, local day) for the daily breakdown: the same state, the same fold and merge, keyed by
a day instead of a month. Folding a batch gives a delta state per key; merging it into the
stored state is associative, so a figure is exact whatever the batching, and reading it never
rescans events. A month's delta is the merge of its days' deltas (`roll_up`), so a batch is
folded once, by day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from voxmeter.domain.catalog import Aggregation, Catalog
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.quantities import MICRO, ceil_units

MeterKey = tuple[str, int]
"""(product api, month index)."""
DayKey = tuple[str, int]
"""(product api, local day as a date ordinal)."""


def _month(event: UsageEvent) -> int:
    return event.month


@dataclass(slots=True)
class MeterState:
    """A month's running state for one product.

    `total` is the sum (sum, count), the peak level reported in the month (max) or the number
    of distinct subjects times MICRO (unique), in micro-units. For levels, `last_time` and
    `last_value` are the latest report of the month, which the next months carry forward.
    """

    total: int = 0
    last_time: int | None = None
    last_value: int = 0

    def copy(self) -> MeterState:
        return MeterState(self.total, self.last_time, self.last_value)


def contribution(aggregation: Aggregation, quantity: int) -> int:
    """What one event adds to a summing meter (round-up products bill whole units per event)."""
    if aggregation is Aggregation.SUM_ROUND_UP:
        return ceil_units(quantity)
    return quantity


def fold(
    catalog: Catalog,
    events: Iterable[UsageEvent],
    period: Callable[[UsageEvent], int] = _month,
) -> dict[MeterKey, MeterState]:
    """Fold events (in arrival order) into one delta state per (product, period): the month
    by default, or the local day with `period` giving an event's day.

    Unique meters are left at zero here: whether a subject is new to the period is a question
    for storage, which adds the count of new subjects afterwards.
    """
    deltas: dict[MeterKey, MeterState] = {}
    aggregations = {p.api: p.aggregation for p in catalog}
    for event in events:
        key = (event.product, period(event))
        state = deltas.get(key)
        if state is None:
            state = deltas[key] = MeterState()
        aggregation = aggregations[event.product]
        if aggregation is Aggregation.MAX:
            state.total = max(state.total, event.quantity)
            if state.last_time is None or event.time >= state.last_time:
                state.last_time = event.time
                state.last_value = event.quantity
        elif aggregation is not Aggregation.UNIQUE:
            state.total += contribution(aggregation, event.quantity)
    return deltas


def merge(aggregation: Aggregation, stored: MeterState | None, delta: MeterState) -> MeterState:
    """Combine a stored state with a later batch's delta; on equal times the later report wins."""
    if stored is None:
        return delta.copy()
    if aggregation is Aggregation.MAX:
        if delta.last_time is None:
            return stored.copy()
        if stored.last_time is None or delta.last_time >= stored.last_time:
            last_time, last_value = delta.last_time, delta.last_value
        else:
            last_time, last_value = stored.last_time, stored.last_value
        return MeterState(max(stored.total, delta.total), last_time, last_value)
    return MeterState(stored.total + delta.total, None, 0)


def roll_up(
    catalog: Catalog, day_deltas: dict[DayKey, MeterState], month_of_day: Callable[[int], int]
) -> dict[MeterKey, MeterState]:
    """The month deltas of a batch from its day deltas: each month's days merged. Exactly the
    month fold of the same events, since merge is associative and two reports at one instant
    fall on one day (where the later one already won)."""
    aggregations = {p.api: p.aggregation for p in catalog}
    months: dict[MeterKey, MeterState] = {}
    for (api, day), delta in day_deltas.items():
        key = (api, month_of_day(day))
        months[key] = merge(aggregations[api], months.get(key), delta)
    return months


def day_figures(
    aggregation: Aggregation, states: list[MeterState | None], carried: int | None
) -> list[int]:
    """Each day's figure in micro-units, days in order.

    A summing or unique meter's day is its own total. A level's day is the level at the end of
    the day: the day's last report, else the previous day's level, starting from the last
    level reported before the first day (`carried`; 0 before any report).
    """
    if aggregation is not Aggregation.MAX:
        return [state.total if state is not None else 0 for state in states]
    level = carried or 0
    found: list[int] = []
    for state in states:
        if state is not None and state.last_time is not None:
            level = state.last_value
        found.append(level)
    return found


def figure(aggregation: Aggregation, state: MeterState | None, carried: int | None) -> int:
    """The month's figure in micro-units.

    For a level, the month starts at the last level reported before it (`carried`) and the
    figure is the highest level seen during the month.
    """
    total = state.total if state is not None else 0
    if aggregation is Aggregation.MAX and carried is not None:
        return max(total, carried)
    return total


def unique_total(distinct_subjects: int) -> int:
    return distinct_subjects * MICRO
