"""Month-end forecasts (docs/behaviour.md, Forecast), against a model written with aware
datetimes and Decimal: elapsed and remaining are real time between instants, so a DST month
is an hour shorter or longer."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, localcontext
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, ev, month_index
from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.forecast import forecast
from voxmeter.domain.months import Month, calendar, to_micros
from voxmeter.domain.quantities import from_micro, to_micro
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.forecast import month_forecast
from voxmeter.service.ingest import ingest_batch

ACCUMULATING = [Aggregation.SUM, Aggregation.SUM_ROUND_UP, Aggregation.COUNT, Aggregation.UNIQUE]


def model(
    aggregation: Aggregation, items: Decimal, tz: str, month: Month, now: datetime
) -> Decimal:
    """items + rate x remaining, rate = items / max(elapsed, 1 day), in Decimal."""
    zone = ZoneInfo(tz)
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    following = Month.from_index(month.index + 1)
    end = datetime(following.year, following.month, 1, tzinfo=zone)
    if now >= end or aggregation is Aggregation.MAX:
        return items
    # aware datetimes of one zone subtract as wall times: compare them in UTC instead
    elapsed = max(now - start.astimezone(ZoneInfo("UTC")), timedelta(days=1))
    remaining = end.astimezone(ZoneInfo("UTC")) - max(now, start.astimezone(ZoneInfo("UTC")))
    with localcontext() as ctx:
        ctx.prec = 80
        seconds = Decimal(remaining // timedelta(microseconds=1))
        # items x remaining first: a quotient that is a whole number then stays exact
        value = items + items * seconds / Decimal(elapsed // timedelta(microseconds=1))
        if aggregation in (Aggregation.COUNT, Aggregation.SUM_ROUND_UP):
            return value.quantize(Decimal(1), rounding=ROUND_CEILING)
        return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)


def run(aggregation: Aggregation, items: str, tz: str, month: Month, now: datetime) -> Decimal:
    start, end = calendar(tz).window(month.index)
    got = forecast(aggregation, to_micro(Decimal(items)), start, end, to_micros(now))
    return from_micro(got)


UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize("aggregation", ACCUMULATING)
@pytest.mark.parametrize(
    ("tz", "month", "now", "items"),
    [
        # the first day: under a day elapsed, so the rate is per whole day
        ("UTC", Month(2026, 4), datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC), "7"),
        ("UTC", Month(2026, 4), datetime(2026, 4, 1, 23, 0, tzinfo=UTC), "3.5"),
        # mid-month
        ("UTC", Month(2026, 4), datetime(2026, 4, 15, 12, tzinfo=UTC), "100"),
        ("UTC", Month(2026, 2), datetime(2026, 2, 10, 6, 30, tzinfo=UTC), "12.345678"),
        # the last day
        ("UTC", Month(2026, 4), datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC), "29"),
        # DST months: March has 743 hours in New York, November 745
        ("America/New_York", Month(2026, 3), datetime(2026, 3, 8, 12, tzinfo=NY), "10"),
        ("America/New_York", Month(2026, 3), datetime(2026, 3, 20, tzinfo=NY), "1000.5"),
        ("America/New_York", Month(2026, 11), datetime(2026, 11, 1, 12, tzinfo=NY), "10"),
        ("America/New_York", Month(2026, 11), datetime(2026, 11, 30, 23, tzinfo=NY), "61"),
        ("Asia/Kathmandu", Month(2026, 6), datetime(2026, 6, 11, 5, 45, tzinfo=UTC), "3"),
    ],
)
def test_current_month_extrapolates_the_rate(
    aggregation: Aggregation, tz: str, month: Month, now: datetime, items: str
) -> None:
    if aggregation is not Aggregation.SUM:  # their figures are whole units
        items = str(Decimal(items).to_integral_value(ROUND_CEILING))
    expected = model(aggregation, Decimal(items), tz, month, now)
    got = run(aggregation, items, tz, month, now)
    assert got == expected
    assert got >= Decimal(items)


def test_dst_changes_the_forecast_by_the_hour_the_month_gains_or_loses() -> None:
    """Half of March elapsed in New York: the remaining half is one hour short of a half of
    744 hours, so the forecast is below twice the figure; November's is above."""
    march = run(
        Aggregation.SUM,
        "372",
        "America/New_York",
        Month(2026, 3),
        datetime(2026, 3, 16, 12, tzinfo=NY),
    )
    november = run(
        Aggregation.SUM,
        "360",
        "America/New_York",
        Month(2026, 11),
        datetime(2026, 11, 16, tzinfo=NY),
    )
    # March: 372 units over 371 hours elapsed (the 8th lost one), 372 hours left
    assert march == model(
        Aggregation.SUM,
        Decimal(372),
        "America/New_York",
        Month(2026, 3),
        datetime(2026, 3, 16, 12, tzinfo=NY),
    )
    assert march != Decimal(744)
    assert november != Decimal(720)


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_a_month_that_has_ended_forecasts_its_figure(aggregation: Aggregation) -> None:
    for now in (datetime(2026, 5, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)):
        assert run(aggregation, "41.5", "UTC", Month(2026, 4), now) == Decimal("41.5")


def test_a_level_forecasts_its_figure_and_nothing_forecasts_from_zero() -> None:
    now = datetime(2026, 4, 3, tzinfo=UTC)
    assert run(Aggregation.MAX, "12", "UTC", Month(2026, 4), now) == Decimal(12)
    for aggregation in ACCUMULATING:
        assert run(aggregation, "0", "UTC", Month(2026, 4), now) == 0


def test_rounding_up_to_whole_units_and_to_six_decimals() -> None:
    # 1 unit after 3 days of a 30-day month: 10 exactly; 1.000001 gives 10.00001
    now = datetime(2026, 4, 4, tzinfo=UTC)
    assert run(Aggregation.COUNT, "1", "UTC", Month(2026, 4), now) == Decimal(10)
    assert run(Aggregation.SUM, "1.000001", "UTC", Month(2026, 4), now) == Decimal("10.00001")
    assert run(Aggregation.SUM_ROUND_UP, "1.000001", "UTC", Month(2026, 4), now) == 11
    # 1 unit after 7 days: 30/7 = 4.285714285..., up to 5 or half-even to 4.285714
    now = datetime(2026, 4, 8, tzinfo=UTC)
    assert run(Aggregation.SUM_ROUND_UP, "1", "UTC", Month(2026, 4), now) == 5
    assert run(Aggregation.SUM, "1", "UTC", Month(2026, 4), now) == Decimal("4.285714")


@given(
    aggregation=st.sampled_from(ACCUMULATING),
    micros=st.integers(min_value=0, max_value=10**18),
    tz=st.sampled_from(["UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"]),
    month=st.integers(min_value=Month(2000, 1).index, max_value=Month(2040, 12).index),
    offset=st.integers(min_value=0, max_value=31 * 86_400 * 1_000_000),
)
def test_forecast_matches_the_decimal_model(
    aggregation: Aggregation, micros: int, tz: str, month: int, offset: int
) -> None:
    if aggregation is not Aggregation.SUM:
        micros -= micros % 1_000_000
    start, end = calendar(tz).window(month)
    now = start + offset
    got = forecast(aggregation, micros, start, end, now)
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now)
    assert from_micro(got) == model(
        aggregation, from_micro(micros), tz, Month.from_index(month), when
    )
    assert got >= micros


# ------------------------------------------------------------------- the service on the fake


def test_service_forecasts_every_product_in_catalog_order(
    ctx: Context[MemoryDatabase], op: Operation, clock: FakeClock
) -> None:
    """15 May 12:00 UTC: 14.5 days of May's 31 have passed."""
    clock.set("2026-05-01T12:00:00Z")  # April still open
    ingest_batch(ctx, op, [ev("e", "rsync", "2026-04-05T00:00:00Z", "7")])
    clock.set("2026-05-15T12:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("a", "rsync", "2026-05-02T00:00:00Z", "2.9"),
            ev("b", "interactions", "2026-05-03T00:00:00Z"),
            ev("c", "ivr_minutes", "2026-05-04T00:00:00Z", "0.5"),
            ev("d", "agent_script", "2026-05-05T00:00:00Z", "4"),
        ],
    )
    now = clock()
    rows = month_forecast(ctx, op, month_index("2026-05"), now)
    assert [r.product.api for r in rows] == [p.api for p in ctx.catalog]
    by_api = {r.product.api: r for r in rows}
    may = datetime(2026, 5, 15, 12, tzinfo=UTC)
    for api, items in (("rsync", "2.9"), ("interactions", "1"), ("ivr_minutes", "1")):
        aggregation = by_api[api].product.aggregation
        assert from_micro(by_api[api].items) == Decimal(items)
        assert from_micro(by_api[api].forecast) == model(
            aggregation, Decimal(items), "UTC", Month(2026, 5), may
        )
    assert from_micro(by_api["agent_script"].forecast) == 4
    assert by_api["tts_chars"].forecast == 0
    april = {r.product.api: r for r in month_forecast(ctx, op, month_index("2026-04"), now)}
    assert april["rsync"].forecast == april["rsync"].items == to_micro(Decimal(7))
