"""A mirror's readings as meter states (docs/mirrors.md, Figures).

A reading is the upstream's figure of one product for one month, observed at an instant. The
month meter holds the last reading; the day meter of the day it was observed gains the
increase since the previous reading, so a month's days add up to its figure exactly as an
event-fed operation's do. A level (`max`) is not an increase: its day holds the level read.
Month meters of levels keep no report time, so a level is never carried into a month from
an earlier one: a mirror's month figure is exactly what the upstream said.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.meters import MeterState


@dataclass(frozen=True, slots=True)
class Reading:
    """One product's month figure in micro-units, observed at `seen`."""

    product: str
    month: int
    figure: int
    seen: int


def month_state(reading: Reading) -> MeterState:
    """The month meter a reading leaves: its figure, as the month's total or peak."""
    return MeterState(reading.figure, None, 0)


def day_state(
    aggregation: Aggregation,
    reading: Reading,
    previous: int | None,
    stored: MeterState | None,
) -> MeterState:
    """The day meter after a reading: the level read, or the day's total plus the increase
    since the previous reading of the month (the whole figure for the month's first).

    A figure the upstream corrected downwards gives a negative increase, so the days still add
    up to the month."""
    if aggregation is Aggregation.MAX:
        peak = reading.figure if stored is None else max(stored.total, reading.figure)
        return MeterState(peak, reading.seen, reading.figure)
    base = stored.total if stored is not None else 0
    return MeterState(base + reading.figure - (previous or 0), None, 0)


def landing_day(observed_day: int, first_day: int, last_day: int) -> int:
    """The local day a reading's increase lands on: the day it was observed, or the month's
    last day for a reading of a month that had ended (the freezing sweep's)."""
    return min(max(observed_day, first_day), last_day)
