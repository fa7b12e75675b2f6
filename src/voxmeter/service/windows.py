"""Windows of wall-clock times, as the listings (events, audit log) take them."""

from __future__ import annotations

from datetime import datetime, timedelta

from voxmeter.domain.months import ZoneCalendar, calendar
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters

MAX_WINDOW_DAYS = 31
_SECOND = timedelta(seconds=1)


def check_window(start_local: datetime, end_local: datetime) -> None:
    """A window of wall-clock times: in order, at most MAX_WINDOW_DAYS long (the listings of
    events and of the audit log share it)."""
    if end_local < start_local:
        raise BadParameters("date_end is before date_ini")
    if (end_local - start_local).total_seconds() > MAX_WINDOW_DAYS * 86400:
        raise BadParameters(f"the window is longer than {MAX_WINDOW_DAYS} days")


def window_micros(op: Operation, start_local: datetime, end_local: datetime) -> tuple[int, int]:
    """[first moment the operation's clock reads `start_local`, first moment it reads past the
    second `end_local`): the end second is included, and windows that meet (end X, next start
    X + 1 s) share one bound."""
    cal = calendar(op.timezone)
    return cal.local_micros(start_local), _after(cal, end_local)


def _after(cal: ZoneCalendar, last: datetime) -> int:
    """The first instant at which the clock reads a time after the second `last`."""
    try:
        return cal.local_micros(last + _SECOND)
    except OverflowError:  # 9999-12-31 23:59:59: no later wall time exists
        return cal.local_micros(last) + 1_000_000
