"""Month-end forecasts: where a month's figure is heading at its current pace (docs/behaviour.md,
Forecast).

Exact integer arithmetic on micro-units and microsecond instants (no binary floats): the rate is
a ratio of integers, and the one division rounds as the product's figures do.
"""

from __future__ import annotations

from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.quantities import MICRO

DAY = 86_400 * 1_000_000
"""The shortest span a rate is measured over, in microseconds: a month's first hours would
otherwise extrapolate a handful of events to thousands."""


def forecast(aggregation: Aggregation, items: int, start: int, end: int, now: int) -> int:
    """The month's expected figure (micro-units) given `items` so far.

    `[start, end)` is the month in epoch microseconds (its local midnights, so a DST month is an
    hour shorter or longer) and `now` the instant of the forecast. Before the month ends,
    accumulating products extrapolate `items + rate * remaining` with `rate = items /
    max(elapsed, 1 day)`; a level product stays at its figure (the current level, held to the
    end, cannot lower the month's peak). A month that has ended is its figure.
    """
    if now >= end or aggregation is Aggregation.MAX or items == 0:
        return items
    elapsed = max(now - start, DAY)
    remaining = end - max(now, start)
    numerator = items * (elapsed + remaining)  # items + items * remaining / elapsed
    if aggregation in (Aggregation.COUNT, Aggregation.SUM_ROUND_UP):
        whole = elapsed * MICRO
        return -(-numerator // whole) * MICRO
    return _half_even(numerator, elapsed)


def _half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties to even."""
    quotient, rest = divmod(numerator, denominator)
    twice = 2 * rest
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient
