"""The daily breakdown on the in-memory fake, and the day rules of the domain: local days
partition time, a batch folded by day rolls up to its month fold, and the days of a summing
product add up exactly to its month whatever the events, zone, batching and voids."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, ev
from voxmeter.domain.batch import check_and_fold
from voxmeter.domain.catalog import Aggregation, Catalog, Product
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.meters import fold, roll_up
from voxmeter.domain.months import Month, calendar, from_micros, month_of_day, to_micros
from voxmeter.domain.quantities import MICRO
from voxmeter.service.context import Context
from voxmeter.service.daily import daily_figures
from voxmeter.service.events import void_event
from voxmeter.service.figures import month_figures
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import create_operation

CATALOG = Catalog(
    [*Catalog.load(), Product(28, "agents_seen", "Agents seen", "agents", Aggregation.UNIQUE)]
)
ZONES = ["UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham"]
SUMMING = ["rsync", "ivr_minutes", "interactions"]
#: Events fall from 2026-02-20 to 2026-04-10 (UTC), across two month ends and the DST changes
#: of the northern and southern zones above.
SPAN_START = to_micros(datetime(2026, 2, 20, tzinfo=UTC))
SPAN = to_micros(datetime(2026, 4, 10, tzinfo=UTC)) - SPAN_START
HOUR = 3_600_000_000


def test_local_days_follow_dst_and_odd_offsets() -> None:
    ny = calendar("America/New_York")
    spring = date(2026, 3, 8).toordinal()
    autumn = date(2026, 11, 1).toordinal()
    assert ny.day_window(spring)[1] - ny.day_window(spring)[0] == 23 * HOUR
    assert ny.day_window(autumn)[1] - ny.day_window(autumn)[0] == 25 * HOUR
    ktm = calendar("Asia/Kathmandu")
    start, _ = ktm.day_window(date(2026, 5, 2).toordinal())
    assert start == to_micros(datetime(2026, 5, 1, 18, 15, tzinfo=UTC))
    assert ktm.day_of(start) == date(2026, 5, 2).toordinal()
    assert ktm.day_of(start - 1) == date(2026, 5, 1).toordinal()


@given(st.sampled_from(ZONES), st.integers(0, SPAN))
def test_an_instant_lies_in_the_window_of_its_day(zone: str, offset: int) -> None:
    cal = calendar(zone)
    moment = SPAN_START + offset
    day = cal.day_of(moment)
    start, end = cal.day_window(day)
    assert start <= moment < end
    assert cal.day_window(day + 1)[0] == end  # days meet: no gap, no overlap
    assert month_of_day(day) == cal.month_of(moment)
    assert date.fromordinal(day) == from_micros(moment, cal.zone).date()


events_strategy = st.lists(
    st.tuples(
        st.sampled_from([p.api for p in CATALOG]),
        st.integers(0, SPAN),
        st.integers(0, 5 * MICRO),
        st.sampled_from(["a", "b", "c"]),
    ),
    max_size=60,
)


@given(st.sampled_from(ZONES), events_strategy)
def test_a_batch_folded_by_day_rolls_up_to_its_month_fold(
    zone: str, drawn: list[tuple[str, int, int, str]]
) -> None:
    cal = calendar(zone)
    events = []
    for n, (api, offset, quantity, subject) in enumerate(drawn):
        time = SPAN_START + offset
        if CATALOG.get(api).aggregation is Aggregation.COUNT:  # type: ignore[union-attr]
            quantity = max(MICRO, quantity // MICRO * MICRO)
        events.append(UsageEvent(str(n), api, time, cal.month_of(time), quantity, subject))
    days = fold(CATALOG, events, lambda e: cal.day_of(e.time))
    assert roll_up(CATALOG, days, month_of_day) == fold(CATALOG, events)


@given(st.sampled_from(ZONES), events_strategy)
def test_the_checked_batch_folds_by_day_like_fold(
    zone: str, drawn: list[tuple[str, int, int, str]]
) -> None:
    cal = calendar(zone)
    incoming = []
    for n, (api, offset, quantity, subject) in enumerate(drawn):
        moment = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=SPAN_START + offset)
        if CATALOG.get(api).aggregation is Aggregation.COUNT:  # type: ignore[union-attr]
            quantity = max(MICRO, quantity // MICRO * MICRO)
        text = str(Decimal(quantity) / MICRO)
        incoming.append(ev(str(n), api, moment.isoformat(), text, subject))
    checked = check_and_fold(incoming, CATALOG, cal, SPAN_START + SPAN)  # type: ignore[arg-type]
    assert checked.problems == []
    assert checked.day_deltas == fold(CATALOG, checked.events, lambda e: cal.day_of(e.time))
    assert checked.deltas == fold(CATALOG, checked.events)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(ZONES),
    st.lists(
        st.tuples(
            st.sampled_from(SUMMING),
            st.integers(0, SPAN),
            st.decimals(min_value=0, max_value=50, places=6, allow_nan=False),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 5),
    st.sets(st.integers(0, 39), max_size=8),
)
def test_the_days_of_a_summing_month_add_up_exactly_to_its_figure(
    zone: str,
    drawn: list[tuple[str, int, Decimal]],
    batches: int,
    voids: set[int],
) -> None:
    clock = FakeClock("2026-04-10T00:00:00Z")
    storage = MemoryDatabase()
    storage.migrate()
    ctx = Context(storage=storage, catalog=CATALOG, grace_days=60, clock=clock)
    op = create_operation(ctx, "acme", "9901", zone)
    events = []
    for n, (api, offset, quantity) in enumerate(drawn):
        moment = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=SPAN_START + offset)
        if api == "interactions":
            quantity = Decimal(max(1, int(quantity)))
        events.append(ev(str(n), api, moment.isoformat(), str(quantity)))
    for k in range(batches):
        ingest_batch(ctx, op, events[k::batches])
    for n in voids:
        if n < len(events):
            void_event(ctx, op, str(n))
    products = [p for p in CATALOG if p.api in SUMMING]
    for month in (Month(2026, 2).index, Month(2026, 3).index, Month(2026, 4).index):
        days = daily_figures(ctx, op, products, month)
        months = month_figures(ctx, op, products, month)
        for p in products:
            assert sum(days.figures[p.api]) == months[p.api]
