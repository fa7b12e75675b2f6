"""Daily charts drawn on the server as inline SVG, so a chart needs no script and no file from
elsewhere. Written here rather than in a template: a month view draws 27 charts of up to 31
bars, and each bar's label is formatted once per distinct value, not once per bar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH = 248
HEIGHT = 48
GAP = 1.0
HAIRLINE = 0.5
"""A day of zero still draws a hairline, so every day of the month is there to point at."""


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    value: Decimal


def bars(days: list[date], values: list[Decimal]) -> list[Bar]:
    """One bar per day, heights scaled to the month's largest day."""
    peak = max(values, default=Decimal(0))
    slot = WIDTH / max(len(days), 1)
    width = max(slot - GAP, HAIRLINE)
    found = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        scaled = float(HEIGHT * value / peak) if peak > 0 else 0.0
        height = max(scaled, HAIRLINE)
        found.append(Bar(slot * i, HEIGHT - height, width, height, day, value))
    return found


class ChartWriter:
    """Writes the charts of one page: labels in the page's language, each distinct day and
    value formatted once."""

    def __init__(self, day: Callable[[date], str], number: Callable[[Decimal], str]) -> None:
        self._day = day
        self._number = number
        self._days: dict[date, str] = {}
        self._numbers: dict[Decimal, str] = {}

    def svg(self, days: list[date], values: list[Decimal], labelledby: str) -> Markup:
        """The chart, named by the page's elements of the ids in `labelledby`."""
        parts = [
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}"'
            f' height="{HEIGHT}" role="img" aria-labelledby="{escape(labelledby)}"'
            ' focusable="false">'
        ]
        for bar in bars(days, values):
            title = f"{self._label_day(bar.day)}: {self._label_number(bar.value)}"
            parts.append(
                f'<rect x="{bar.x:.2f}" y="{bar.y:.2f}" width="{bar.width:.2f}"'
                f' height="{bar.height:.2f}"><title>{escape(title)}</title></rect>'
            )
        parts.append("</svg>")
        return Markup("\n".join(parts))  # noqa: S704 - every text in it is escaped above

    def _label_day(self, day: date) -> str:
        found = self._days.get(day)
        if found is None:
            found = self._days[day] = self._day(day)
        return found

    def _label_number(self, value: Decimal) -> str:
        found = self._numbers.get(value)
        if found is None:
            found = self._numbers[value] = self._number(value)
        return found
