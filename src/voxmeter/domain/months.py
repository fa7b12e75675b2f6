"""Calendar months in an operation's timezone.

A month is `[first day 00:00, first day of next month 00:00)` in local time, so its length in
seconds varies with DST and it starts at a different instant in every timezone. Instants are
integer microseconds since the Unix epoch (UTC); months are integer indices (year * 12 + month
- 1) in the hot paths and `Month` values at the edges.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
DAY_MICROS = 86_400_000_000
FIRST_YEAR = 1970
LAST_YEAR = 2199
_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")


class MonthError(ValueError):
    """A month or timezone that cannot be used; the message is shown to the caller."""


@dataclass(frozen=True, order=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse `YYYY-MM` strictly."""
        match = _MONTH_RE.fullmatch(text)
        if not match:
            raise MonthError("month must be YYYY-MM")
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise MonthError("month must be YYYY-MM with MM from 01 to 12")
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise MonthError(f"month must be between {FIRST_YEAR}-01 and {LAST_YEAR}-12")
        return cls(year, month)

    @classmethod
    def from_index(cls, index: int) -> Month:
        year, zero_based = divmod(index, 12)
        return cls(year, zero_based + 1)

    @property
    def index(self) -> int:
        return self.year * 12 + self.month - 1

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def month_of_day(day: int) -> int:
    """The month index of a local day given as a date ordinal."""
    moment = date.fromordinal(day)
    return moment.year * 12 + moment.month - 1


def to_micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, no float)."""
    return (moment - EPOCH) // MICROSECOND


def from_micros(micros: int, zone: ZoneInfo) -> datetime:
    return (EPOCH + micros * MICROSECOND).astimezone(zone)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """An IANA zone by name, or MonthError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MonthError(f"unknown timezone {name!r}") from exc


class ZoneCalendar:
    """Month and day arithmetic for one timezone, with month starts precomputed for bisecting."""

    def __init__(self, tz_name: str) -> None:
        self.name = tz_name
        self.zone = zone(tz_name)
        self.first_month = FIRST_YEAR * 12
        self.month_starts = [
            self.local_micros(datetime(y, m, 1))
            for y in range(FIRST_YEAR, LAST_YEAR + 2)
            for m in range(1, 13)
        ]
        self.min_micros = self.month_starts[0]
        self.max_micros = self.month_starts[(LAST_YEAR + 1 - FIRST_YEAR) * 12] - 1
        self._month_days: dict[int, tuple[int, list[int]]] = {}
        self._day: tuple[int, int, str] = (0, 0, "")
        """The day `day_label` last computed: its `[start, end)` and its label."""

    def month_of(self, micros: int) -> int:
        """The month index containing the instant (instants must be within the supported years)."""
        return self.first_month + bisect_right(self.month_starts, micros) - 1

    def window(self, month_index: int) -> tuple[int, int]:
        """The month's `[start, end)` in epoch microseconds."""
        offset = month_index - self.first_month
        return self.month_starts[offset], self.month_starts[offset + 1]

    def local_now(self, now_micros: int) -> datetime:
        return from_micros(now_micros, self.zone)

    def today(self, now_micros: int) -> date:
        return self.local_now(now_micros).date()

    def day_label(self, now_micros: int) -> str:
        """The local date of the instant as YYYY-MM-DD.

        Every API request needs it (its quota day), so the day last computed is kept with its
        bounds, and the requests of a day after the first compare two integers instead of
        converting between zones. A day is kept only when it lasts exactly 24 hours with one
        UTC offset at both ends: no change of offset then falls within it, as no zone has ever
        changed its offset twice in one day (the closest two changes since 1970 are six days
        apart), so every instant between its bounds reads that date."""
        start, end, label = self._day
        if start <= now_micros < end:
            return label
        today = self.today(now_micros)
        label = today.isoformat()
        start, end = self.day_start(today), self.day_start(today + timedelta(days=1))
        if end - start == DAY_MICROS and self._offset(start) == self._offset(end - 1):
            self._day = (start, end, label)  # one assignment: readers on other threads see
        return label  # the old day or the new one, never a mix

    def _offset(self, micros: int) -> timedelta | None:
        return from_micros(micros, self.zone).utcoffset()

    def current_month(self, now_micros: int) -> int:
        return self.month_of(now_micros)

    def day_start(self, day: date) -> int:
        """The day's first instant: when the clock first reads its 00:00 or later."""
        return self.local_micros(datetime(day.year, day.month, day.day))

    def month_days(self, month_index: int) -> tuple[int, list[int]]:
        """The month's first day (a date ordinal) and the first instant of each of its local
        days, for bisecting; built once per month and kept (a month of days is 31 instants)."""
        found = self._month_days.get(month_index)
        if found is None:
            month = Month.from_index(month_index)
            first = date(month.year, month.month, 1)
            after = Month.from_index(month_index + 1)
            count = (date(after.year, after.month, 1) - first).days
            starts = [self.day_start(first + timedelta(days=d)) for d in range(count)]
            found = self._month_days[month_index] = (first.toordinal(), starts)
        return found

    def day_of(self, micros: int) -> int:
        """The local day containing the instant, as a date ordinal (`date.fromordinal`)."""
        first, starts = self.month_days(self.month_of(micros))
        return first + bisect_right(starts, micros) - 1

    def day_window(self, day: int) -> tuple[int, int]:
        """The local day's `[start, end)` in epoch microseconds (23 or 25 hours across DST)."""
        moment = date.fromordinal(day)
        return self.day_start(moment), self.day_start(moment + timedelta(days=1))

    def closes_at(self, month_index: int, grace_days: int) -> int:
        """When an open month closes by itself: local midnight `grace_days` after it ends."""
        first_of_next = Month.from_index(month_index + 1)
        day = date(first_of_next.year, first_of_next.month, 1) + timedelta(days=grace_days)
        return self.day_start(day)

    def local_micros(self, naive: datetime) -> int:
        """The first instant at which this zone's clock reads `naive` or later.

        A wall time that occurs once is that instant; one that occurs twice (the clock goes
        back) is its first occurrence; one the clock skips (it goes forward) is the instant of
        the change. This is never decreasing in `naive`, so ranges `[local_micros(a),
        local_micros(b))` of consecutive wall times `a < b < c` partition the timeline: no gap,
        no overlap, whatever the zone does between them.
        """
        found = to_micros(naive.replace(tzinfo=self.zone, fold=0))
        if self._reads(found) == naive:
            return found
        # Skipped: `fold=0` read it with the offset before the change (an instant after it),
        # `fold=1` with the offset after (an instant before it). The change lies between.
        before = to_micros(naive.replace(tzinfo=self.zone, fold=1))
        if not before < found or self._reads(before) >= naive:
            return found  # not a plain skip; cannot happen with real zone data
        while found - before > 1:  # the clock reads < naive at `before`, > naive at `found`
            middle = (before + found) // 2
            if self._reads(middle) >= naive:
                found = middle
            else:
                before = middle
        return found

    def _reads(self, micros: int) -> datetime:
        """What this zone's clock reads at the instant (naive)."""
        return from_micros(micros, self.zone).replace(tzinfo=None)


@lru_cache(maxsize=256)
def calendar(tz_name: str) -> ZoneCalendar:
    """Shared calendars: building one costs a few milliseconds, reading one is a bisect."""
    return ZoneCalendar(tz_name)
