"""Daily charts drawn on the server: bar geometry for an inline SVG (templates/_chart.html),
so a chart needs no script and no file from elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

WIDTH = 248
HEIGHT = 48
GAP = 1


@dataclass(frozen=True, slots=True)
class Bar:
    x: Decimal
    y: Decimal
    width: Decimal
    height: Decimal
    day: date
    value: Decimal


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: Decimal


def bar_chart(days: list[date], values: list[Decimal]) -> Chart:
    """One bar per day, heights scaled to the month's largest day (a day of zero draws a
    hairline, so every day of the month is there to point at)."""
    peak = max(values, default=Decimal(0))
    slot = Decimal(WIDTH) / max(len(days), 1)
    width = max(slot - GAP, Decimal("0.5"))
    bars = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        scaled = Decimal(HEIGHT) * value / peak if peak > 0 else Decimal(0)
        height = max(scaled, Decimal("0.5"))
        bars.append(
            Bar(
                x=_round(slot * i),
                y=_round(Decimal(HEIGHT) - height),
                width=_round(width),
                height=_round(height),
                day=day,
                value=value,
            )
        )
    return Chart(WIDTH, HEIGHT, bars, peak)


def _round(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))
