"""Calendar months in an operation's timezone (docs/products.md, docs/behaviour.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voxmeter.domain.months import (
    FIRST_YEAR,
    LAST_YEAR,
    Month,
    MonthError,
    ZoneCalendar,
    calendar,
    from_micros,
    to_micros,
    zone,
)

HOUR = 3_600_000_000
DAY = 24 * HOUR


def utc(*args: int) -> int:
    return to_micros(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


def idx(year: int, month: int) -> int:
    return Month(year, month).index


# ---------------------------------------------------------------------------- Month values


@pytest.mark.parametrize(
    ("text", "year", "month"),
    [("2026-03", 2026, 3), ("1970-01", 1970, 1), ("2199-12", 2199, 12), ("2026-10", 2026, 10)],
)
def test_parse_valid(text: str, year: int, month: int) -> None:
    parsed = Month.parse(text)
    assert parsed == Month(year, month)
    assert str(parsed) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026",
        "2026-3",
        "2026-003",
        "26-03",
        "02026-03",
        "2026-03-01",
        "2026/03",
        "2026_03",
        "202603",
        " 2026-03",
        "2026-03 ",
        "2026-03\n",
        "\n2026-03",
        "2026-00",
        "2026-13",
        "2026-99",
        "1969-12",
        "2200-01",
        "0000-01",
        "+202-03",
        "-202-03",
        "2026-+3",
        "abcd-ef",
        "2026-1a",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(MonthError):
        Month.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "\uff12\uff10\uff12\uff16-\uff10\uff13",  # full-width digits
        "\u0662\u0660\u0662\u0666-\u0660\u0663",  # Arabic-Indic digits
        "\u0968\u0966\u0968\u096c-\u0966\u0969",  # Devanagari digits
    ],
)
def test_parse_rejects_non_ascii_digits(text: str) -> None:
    with pytest.raises(MonthError):
        Month.parse(text)


def test_month_error_messages() -> None:
    with pytest.raises(MonthError, match="YYYY-MM"):
        Month.parse("2026-3")
    with pytest.raises(MonthError, match="01 to 12"):
        Month.parse("2026-13")
    with pytest.raises(MonthError, match="1970-01 and 2199-12"):
        Month.parse("1969-12")
    assert issubclass(MonthError, ValueError)


def test_index_and_from_index() -> None:
    assert Month(2026, 3).index == 2026 * 12 + 2
    assert Month(1970, 1).index == 1970 * 12
    assert Month.from_index(2026 * 12 + 11) == Month(2026, 12)
    assert Month.from_index(2027 * 12) == Month(2027, 1)
    for index in range(FIRST_YEAR * 12, (LAST_YEAR + 1) * 12):
        assert Month.from_index(index).index == index


def test_months_order_chronologically() -> None:
    assert Month(2025, 12) < Month(2026, 1) < Month(2026, 2) < Month(2026, 10)
    assert sorted([Month(2026, 10), Month(2026, 2), Month(2025, 12)]) == [
        Month(2025, 12),
        Month(2026, 2),
        Month(2026, 10),
    ]


def test_str_pads() -> None:
    assert str(Month(2026, 3)) == "2026-03"
    assert str(Month(1970, 1)) == "1970-01"


# ----------------------------------------------------------------------------- instants


def test_to_micros_is_exact_and_offset_aware() -> None:
    assert to_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_micros(datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 1
    assert to_micros(datetime(2026, 1, 1, tzinfo=UTC)) == 1_767_225_600_000_000
    kathmandu = datetime(2026, 11, 1, tzinfo=ZoneInfo("Asia/Kathmandu"))
    assert to_micros(kathmandu) == utc(2026, 10, 31, 18, 15)
    assert to_micros(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1


def test_from_micros_round_trips() -> None:
    ny = ZoneInfo("America/New_York")
    moment = from_micros(utc(2026, 7, 4, 16, 0, 0, 123_456), ny)
    assert moment == datetime(2026, 7, 4, 12, 0, 0, 123_456, tzinfo=ny)
    assert moment.utcoffset() == timedelta(hours=-4)
    assert to_micros(moment) == utc(2026, 7, 4, 16, 0, 0, 123_456)


def test_zone_lookup() -> None:
    assert zone("Asia/Kathmandu") == ZoneInfo("Asia/Kathmandu")
    for bad in ["Mars/Olympus", "", "../etc/passwd", "UTC+5"]:
        with pytest.raises(MonthError, match="unknown timezone"):
            zone(bad)
    with pytest.raises(MonthError):
        calendar("Not/AZone")


# ------------------------------------------------------------------------------ windows


def test_utc_windows() -> None:
    cal = calendar("UTC")
    assert cal.window(idx(2026, 1)) == (utc(2026, 1, 1), utc(2026, 2, 1))
    assert cal.window(idx(2026, 2)) == (utc(2026, 2, 1), utc(2026, 3, 1))
    assert cal.window(idx(2026, 12)) == (utc(2026, 12, 1), utc(2027, 1, 1))
    start, end = cal.window(idx(2028, 2))
    assert end - start == 29 * DAY
    start, end = cal.window(idx(2026, 2))
    assert end - start == 28 * DAY


def test_utc_month_of_boundaries() -> None:
    cal = calendar("UTC")
    boundary = utc(2026, 4, 1)
    assert cal.month_of(boundary) == idx(2026, 4)
    assert cal.month_of(boundary - 1) == idx(2026, 3)
    assert cal.month_of(boundary + 1) == idx(2026, 4)
    assert cal.month_of(utc(2026, 12, 31, 23, 59, 59, 999_999)) == idx(2026, 12)
    assert cal.month_of(utc(2027, 1, 1)) == idx(2027, 1)


def test_utc_supported_range() -> None:
    cal = calendar("UTC")
    assert cal.min_micros == 0
    assert cal.max_micros == utc(2200, 1, 1) - 1
    assert cal.month_of(cal.min_micros) == idx(1970, 1)
    assert cal.month_of(cal.max_micros) == idx(2199, 12)
    assert cal.window(idx(2199, 12)) == (utc(2199, 12, 1), utc(2200, 1, 1))
    assert cal.window(idx(1970, 1)) == (0, utc(1970, 2, 1))


def test_new_york_supported_range_is_local() -> None:
    cal = calendar("America/New_York")
    assert cal.min_micros == utc(1970, 1, 1, 5)
    assert cal.max_micros == utc(2200, 1, 1, 5) - 1


def test_new_york_march_is_one_hour_short() -> None:
    # DST starts on Sunday 8 March 2026 at 02:00 EST.
    cal = calendar("America/New_York")
    start, end = cal.window(idx(2026, 3))
    assert start == utc(2026, 3, 1, 5)  # 00:00 EST
    assert end == utc(2026, 4, 1, 4)  # 00:00 EDT
    assert end - start == 31 * DAY - HOUR


def test_new_york_november_is_one_hour_long() -> None:
    # DST ends on Sunday 1 November 2026 at 02:00 EDT.
    cal = calendar("America/New_York")
    start, end = cal.window(idx(2026, 11))
    assert start == utc(2026, 11, 1, 4)  # 00:00 EDT
    assert end == utc(2026, 12, 1, 5)  # 00:00 EST
    assert end - start == 30 * DAY + HOUR


def test_new_york_other_months_are_whole_days() -> None:
    cal = calendar("America/New_York")
    for month, days in [(1, 31), (2, 28), (4, 30), (7, 31), (10, 31), (12, 31)]:
        start, end = cal.window(idx(2026, month))
        assert end - start == days * DAY, month


def test_new_york_month_of_near_boundaries() -> None:
    cal = calendar("America/New_York")
    # 2026-04-01T03:59:59.999999Z is 23:59:59.999999 EDT on 31 March.
    assert cal.month_of(utc(2026, 4, 1, 3, 59, 59, 999_999)) == idx(2026, 3)
    assert cal.month_of(utc(2026, 4, 1, 4)) == idx(2026, 4)
    # An event at 02:00Z on 1 May UTC is still 30 April in New York.
    assert cal.month_of(utc(2026, 5, 1, 2)) == idx(2026, 4)
    assert calendar("UTC").month_of(utc(2026, 5, 1, 2)) == idx(2026, 5)


def test_kathmandu_quarter_hour_offset() -> None:
    cal = calendar("Asia/Kathmandu")
    assert cal.month_of(utc(2026, 10, 31, 18, 14, 59)) == idx(2026, 10)
    assert cal.month_of(utc(2026, 10, 31, 18, 14, 59, 999_999)) == idx(2026, 10)
    assert cal.month_of(utc(2026, 10, 31, 18, 15)) == idx(2026, 11)
    start, end = cal.window(idx(2026, 11))
    assert start == utc(2026, 10, 31, 18, 15)
    assert end == utc(2026, 11, 30, 18, 15)
    assert end - start == 30 * DAY


def test_kathmandu_offset_change_in_1986() -> None:
    # Nepal moved from +05:30 to +05:45 on 1 January 1986.
    cal = calendar("Asia/Kathmandu")
    assert cal.window(idx(1985, 12))[0] == utc(1985, 11, 30, 18, 30)
    assert cal.window(idx(1986, 2))[0] == utc(1986, 1, 31, 18, 15)


def test_window_start_belongs_to_its_month_and_end_to_the_next() -> None:
    for tz in ["UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"]:
        cal = calendar(tz)
        for month in range(idx(2025, 1), idx(2027, 1)):
            start, end = cal.window(month)
            assert cal.month_of(start) == month
            assert cal.month_of(end - 1) == month
            assert cal.month_of(end) == month + 1
            assert cal.window(month + 1)[0] == end


def test_calendar_is_shared() -> None:
    assert calendar("Asia/Kathmandu") is calendar("Asia/Kathmandu")
    assert calendar("Asia/Kathmandu").name == "Asia/Kathmandu"


# ------------------------------------------------------------------- closes_at and days


def test_closes_at_utc() -> None:
    cal = calendar("UTC")
    assert cal.closes_at(idx(2026, 3), 3) == utc(2026, 4, 4)
    assert cal.closes_at(idx(2026, 3), 0) == cal.window(idx(2026, 3))[1]
    assert cal.closes_at(idx(2026, 12), 3) == utc(2027, 1, 4)
    assert cal.closes_at(idx(2026, 1), 30) == utc(2026, 3, 3)


def test_closes_at_is_local_midnight_across_dst() -> None:
    ny = calendar("America/New_York")
    # October ends at 04:00Z on 1 Nov (EDT); 3 days later it is EST: midnight is 05:00Z.
    assert ny.closes_at(idx(2026, 10), 3) == utc(2026, 11, 4, 5)
    assert ny.closes_at(idx(2026, 10), 0) == utc(2026, 11, 1, 4)
    # February ends in EST; 10 days later (11 March) it is EDT.
    assert ny.closes_at(idx(2026, 2), 10) == utc(2026, 3, 11, 4)


def test_closes_at_kathmandu() -> None:
    cal = calendar("Asia/Kathmandu")
    assert cal.closes_at(idx(2026, 10), 3) == utc(2026, 11, 3, 18, 15)


def test_day_start_today_and_local_micros() -> None:
    ny = calendar("America/New_York")
    assert ny.day_start(date(2026, 3, 8)) == utc(2026, 3, 8, 5)
    assert ny.day_start(date(2026, 3, 9)) == utc(2026, 3, 9, 4)
    assert ny.day_start(date(2026, 3, 9)) - ny.day_start(date(2026, 3, 8)) == 23 * HOUR
    assert ny.today(utc(2026, 5, 1, 3, 59)) == date(2026, 4, 30)
    assert ny.today(utc(2026, 5, 1, 4)) == date(2026, 5, 1)
    assert ny.current_month(utc(2026, 5, 1, 3, 59)) == idx(2026, 4)
    assert ny.local_micros(datetime(2026, 7, 4, 12)) == utc(2026, 7, 4, 16)
    assert ny.local_now(utc(2026, 7, 4, 16)).hour == 12
    kathmandu = calendar("Asia/Kathmandu")
    assert kathmandu.today(utc(2026, 10, 31, 18, 15)) == date(2026, 11, 1)
    assert kathmandu.today(utc(2026, 10, 31, 18, 14, 59)) == date(2026, 10, 31)


def test_day_label_across_a_day_and_its_offset_changes() -> None:
    ny = ZoneCalendar("America/New_York")  # a calendar of its own: its kept day starts empty
    # 2026-03-08 lasts 23 hours (not kept), the 9th and the 10th 24 (each kept in turn).
    for instant, label in [
        (utc(2026, 3, 8, 4, 59, 59), "2026-03-07"),
        (utc(2026, 3, 8, 5), "2026-03-08"),
        (utc(2026, 3, 8, 7), "2026-03-08"),  # after the change, before local midnight
        (utc(2026, 3, 9, 3, 59, 59), "2026-03-08"),
        (utc(2026, 3, 9, 4), "2026-03-09"),
        (utc(2026, 3, 10, 3, 59, 59), "2026-03-09"),  # the kept day's last microsecond
        (utc(2026, 3, 10, 4), "2026-03-10"),
        (utc(2026, 3, 9, 12), "2026-03-09"),  # back to an earlier day
    ]:
        assert ny.day_label(instant) == label
        assert ny.day_label(instant - 1) == ny.today(instant - 1).isoformat()
        assert ny.day_label(instant) == label  # again, now from the kept day


# -------------------------------------------------------------------------- properties

ZONES = [
    "UTC",
    "America/New_York",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "America/Santiago",
    "America/Sao_Paulo",
    "Asia/Tehran",
    "Europe/Dublin",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "Africa/Casablanca",
]


@settings(max_examples=600, deadline=None, database=None)
@given(st.sampled_from(ZONES), st.data())
@example("Asia/Kathmandu", None)
def test_window_of_month_of_contains_the_instant(tz: str, data: st.DataObject | None) -> None:
    cal = calendar(tz)
    if data is None:
        instant = utc(2026, 10, 31, 18, 15)
    else:
        instant = data.draw(st.integers(min_value=cal.min_micros, max_value=cal.max_micros))
    month = cal.month_of(instant)
    start, end = cal.window(month)
    assert start <= instant < end
    # Reference: the calendar month of the instant's local wall-clock date.
    local = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=instant)).astimezone(
        ZoneInfo(tz)
    )
    assert Month.from_index(month) == Month(local.year, local.month)
    # The window starts at the first instant of the 1st of the month, local time.
    first = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start)).astimezone(
        ZoneInfo(tz)
    )
    before = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start - 1)).astimezone(
        ZoneInfo(tz)
    )
    assert (first.year, first.month, first.day) == (local.year, local.month, 1)
    assert (before.year, before.month) != (first.year, first.month)


def _reading(tz: str, micros: int) -> datetime:
    return from_micros(micros, ZoneInfo(tz)).replace(tzinfo=None)


@settings(max_examples=600, deadline=None, database=None)
@given(st.sampled_from(ZONES), st.data())
@example("America/New_York", None)
def test_local_micros_is_the_first_instant_the_clock_reads_it(
    tz: str, data: st.DataObject | None
) -> None:
    """Never decreasing, and exactly the first instant whose reading is that wall time or
    later: in a skipped hour the instant of the change, in a repeated one its first pass."""
    cal = calendar(tz)
    if data is None:  # 02:30 does not exist on 8 March 2026 in New York
        walls = [datetime(2026, 3, 8, 2, 30), datetime(2026, 3, 8, 3, 0)]
    else:
        seconds = st.integers(0, (LAST_YEAR - FIRST_YEAR) * 365 * 86400)
        base = data.draw(seconds, label="wall")
        step = data.draw(st.integers(1, 3 * 86400), label="step")
        walls = [datetime(FIRST_YEAR, 1, 2) + timedelta(seconds=s) for s in (base, base + step)]
    found = [cal.local_micros(w) for w in walls]
    assert found[0] <= found[1]
    for wall, instant in zip(walls, found, strict=True):
        assert _reading(tz, instant) >= wall
        assert _reading(tz, instant - 1) < wall
    if data is None:
        # Both wall times map to 07:00 UTC, the instant the clock jumped from 02:00 to 03:00.
        assert found == [utc(2026, 3, 8, 7), utc(2026, 3, 8, 7)]


@settings(max_examples=600, deadline=None, database=None)
@given(st.sampled_from(ZONES), st.data())
def test_day_label_is_the_local_date(tz: str, data: st.DataObject) -> None:
    """Instants drawn in clusters (a day and the hours around offset changes), each checked
    against a fresh conversion, on a calendar that keeps the last day between them."""
    cal = ZoneCalendar(tz)
    around = data.draw(st.integers(min_value=cal.min_micros + DAY, max_value=cal.max_micros - DAY))
    instants = data.draw(
        st.lists(st.integers(min_value=around - DAY, max_value=around + DAY), max_size=12)
    )
    for instant in [around, *instants, cal.day_start(cal.today(around)), around + 1]:
        assert cal.day_label(instant) == from_micros(instant, ZoneInfo(tz)).date().isoformat()
