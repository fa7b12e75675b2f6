"""The quota's Retry-After counts the time that really passes until the next local day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from voxmeter.domain.months import calendar, to_micros
from voxmeter.entrypoints.http.guard import seconds_to_midnight


def _at(text: str) -> int:
    return to_micros(datetime.fromisoformat(text).astimezone(UTC))


@pytest.mark.parametrize(
    ("zone", "now", "seconds"),
    [
        # An ordinary day: noon to midnight is 12 hours.
        ("America/New_York", "2026-06-10T12:00:00-04:00", 12 * 3600),
        # Spring forward (2026-03-08): from 00:30 EST only 22.5 hours pass until 00:00 EDT.
        ("America/New_York", "2026-03-08T00:30:00-05:00", 22 * 3600 + 1800),
        # Fall back (2026-11-01): from 00:30 EDT, 24.5 hours pass until 00:00 EST.
        ("America/New_York", "2026-11-01T00:30:00-04:00", 24 * 3600 + 1800),
        # +05:45 all year.
        ("Asia/Kathmandu", "2026-11-22T23:59:59.5+05:45", 1),
        # Chatham's 02:45 -> 03:45 change (2026-09-27): one hour less.
        ("Pacific/Chatham", "2026-09-27T00:00:00+12:45", 23 * 3600),
    ],
)
def test_retry_after_is_the_real_time_to_the_next_local_day(
    zone: str, now: str, seconds: int
) -> None:
    assert seconds_to_midnight(calendar(zone), _at(now)) == seconds


def test_retry_after_is_at_least_one_second_and_rounds_up() -> None:
    cal = calendar("UTC")
    assert seconds_to_midnight(cal, _at("2026-06-10T23:59:59.999999+00:00")) == 1
    assert seconds_to_midnight(cal, _at("2026-06-10T23:59:58.5+00:00")) == 2
