"""The one-pass check and fold of a batch (domain/batch.py) against the rules' reference forms:
`explain` (why one event is refused) and `fold` (how valid events make meter deltas)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from voxmeter.domain.batch import check_and_fold
from voxmeter.domain.catalog import Aggregation, Catalog, Product
from voxmeter.domain.events import explain
from voxmeter.domain.meters import fold
from voxmeter.domain.months import calendar, from_micros, to_micros
from voxmeter.domain.quantities import MICRO, to_micro
from voxmeter.entrypoints.wire.codec import EventIn

CATALOG = Catalog(
    [*Catalog.load(), Product(28, "agents_seen", "Agents seen", "agents", Aggregation.UNIQUE)]
)
AGGREGATIONS = {p.api: p.aggregation for p in CATALOG}
NOW = to_micros(datetime(2026, 5, 15, 12, tzinfo=UTC))
# One product of each aggregation, and a name the catalog does not have.
PRODUCTS = ["rsync", "ivr_minutes", "interactions", "agent_script", "agents_seen", "nope"]
QUANTITIES = st.one_of(
    st.none(),
    st.sampled_from(["0", "1", "1.5", "2.000001", "0.0000001", "-1", "-0", "1e3", "1E-7"]),
    # Equal values written differently, and NaNs of several kinds, side by side in a batch.
    st.sampled_from(["1.50", "15E-1", "0.0", "0E+3", "1E+0", "-NaN", "NaN12", "-sNaN"]),
    st.sampled_from(["NaN", "sNaN", "Infinity", "-Infinity", "1e999999", "1e-999999", "1e12"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=0, max_value=10**6),
    st.decimals(),
).map(lambda q: Decimal(q) if isinstance(q, str) else q)
TIMES = st.one_of(
    st.datetimes(
        min_value=datetime(2026, 3, 1),
        max_value=datetime(2026, 5, 16),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=45))]),
    ),
    st.sampled_from(
        [
            datetime(1999, 1, 1, tzinfo=UTC),
            datetime(9999, 1, 1, tzinfo=UTC),
            datetime(2026, 5, 15, 12, 5, tzinfo=UTC),
            datetime(2026, 5, 15, 12, 5, 0, 1, tzinfo=UTC),
        ]
    ),
)
TEXT = st.sampled_from(["a", "b", "e-1", "", "tab\there", "\x00", "ünï"])


@st.composite
def incoming(draw: st.DrawFn) -> EventIn:
    return EventIn(
        id=draw(st.sampled_from(["e-1", "e-2", "e-3"]) | TEXT.filter(bool)),
        product=draw(st.sampled_from(PRODUCTS)),
        time=draw(TIMES),
        quantity=draw(QUANTITIES),
        subject=draw(st.none() | TEXT),
    )


def _micros(event: EventIn) -> int:
    return to_micros(event.time)


@settings(max_examples=400)
@given(st.lists(incoming(), max_size=30), st.sampled_from(["UTC", "Asia/Kathmandu"]))
@example([EventIn(id="a", product="rsync", time=datetime(2026, 5, 1, tzinfo=UTC),
                  quantity=Decimal("sNaN"))], "UTC")  # fmt: skip
def test_an_event_passes_exactly_when_no_rule_explains_a_refusal(
    batch: list[EventIn], zone: str
) -> None:
    cal = calendar(zone)
    checked = check_and_fold(batch, CATALOG, cal, NOW)  # type: ignore[arg-type]
    accepted = iter(checked.events)
    expected_problems = []
    for index, event in enumerate(batch):
        reasons = explain(index, event, AGGREGATIONS.get(event.product), _micros(event), NOW, cal)
        if reasons:
            expected_problems += reasons
            continue
        stored = next(accepted)
        assert stored.id == event.id
        assert stored.time == _micros(event)
        assert stored.month == cal.month_of(stored.time)
        assert stored.subject == event.subject
        assert stored.quantity == (MICRO if event.quantity is None else to_micro(event.quantity))
    assert next(accepted, None) is None
    assert checked.problems == expected_problems


VALID = st.builds(
    EventIn,
    id=st.sampled_from(["e-1", "e-2", "e-3", "e-4"]),
    product=st.sampled_from(PRODUCTS[:-1]),
    time=st.datetimes(
        min_value=datetime(2026, 3, 1), max_value=datetime(2026, 5, 15), timezones=st.just(UTC)
    ),
    quantity=st.sampled_from(["1", "2", "1.5", "0", "0.000001", "3.25"]).map(Decimal),
    subject=st.sampled_from(["a", "b"]),
)


@settings(max_examples=400)
@given(st.lists(VALID, max_size=40))
def test_the_fold_of_a_valid_batch_equals_the_reference_fold(batch: list[EventIn]) -> None:
    checked = check_and_fold(batch, CATALOG, calendar("UTC"), NOW)  # type: ignore[arg-type]
    if checked.problems:  # e.g. 0 or 1.5 for a count: refused, nothing to fold
        return
    assert len(checked.events) == len(batch)
    assert checked.deltas == fold(CATALOG, checked.events)


def test_a_refused_batch_still_lists_every_valid_event_and_every_problem() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    batch = [
        EventIn(id="ok-1", product="rsync", time=at, quantity=Decimal("2")),
        EventIn(id="bad", product="rsync", time=at, quantity=Decimal("NaN")),
        EventIn(id="ok-2", product="interactions", time=at),
    ]
    checked = check_and_fold(batch, CATALOG, calendar("UTC"), NOW)  # type: ignore[arg-type]
    assert [e.id for e in checked.events] == ["ok-1", "ok-2"]
    assert [(p.index, p.field) for p in checked.problems] == [(1, "quantity")]


# Zones whose days are not all 24 hours long, or do not all start at midnight: Havana's clocks
# skip from 00:00 to 01:00 on 8 March 2026, Santiago's repeat 23:00-24:00 on 4 April 2026.
ZONES = ["UTC", "Asia/Kathmandu", "America/Havana", "America/Santiago", "Europe/Berlin"]
# Days around those changes (and Berlin's, 29 March) and around month ends, a few at a time
# so that a batch often holds consecutive days.
DAYS = st.sampled_from(
    [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 1), date(2026, 4, 5), date(2026, 5, 1)]
).flatmap(lambda middle: st.lists(st.integers(-2, 1).map(lambda d: middle + timedelta(days=d))))
# Around a day's first instant: just before, at, just after, and within the day.
NEAR_DAY_START = [-1, 0, 1, 3_600_000_000, 86_399_999_999]


@st.composite
def around_day_starts(draw: st.DrawFn) -> tuple[str, list[EventIn]]:
    """A batch of valid events at and around local day starts, in time order or not."""
    zone = draw(st.sampled_from(ZONES))
    cal = calendar(zone)
    days = draw(DAYS.filter(bool))
    shifts = draw(st.lists(st.sampled_from(NEAR_DAY_START), min_size=len(days)))
    times = [cal.day_start(day) + shift for day, shift in zip(days, shifts, strict=False)]
    if draw(st.booleans()):
        times.sort()  # the usual case: time-ordered, several events a day
    products = draw(st.lists(st.sampled_from(PRODUCTS[:-2]), min_size=len(times)))
    batch = [
        EventIn(
            id=f"e-{n}",
            product=product,
            time=from_micros(micros, ZoneInfo("UTC")),
            quantity=Decimal("2"),
            subject="a",
        )
        for n, (micros, product) in enumerate(zip(times, products, strict=False))
    ]
    return zone, batch


@settings(max_examples=400)
@given(around_day_starts())
def test_the_day_fold_of_a_valid_batch_equals_the_reference_fold(
    case: tuple[str, list[EventIn]],
) -> None:
    zone, batch = case
    cal = calendar(zone)
    checked = check_and_fold(batch, CATALOG, cal, NOW)  # type: ignore[arg-type]
    assert checked.problems == []
    assert [(e.month, e.time) for e in checked.events] == [
        (cal.month_of(_micros(e)), _micros(e)) for e in batch
    ]
    assert checked.day_deltas == fold(CATALOG, checked.events, lambda e: cal.day_of(e.time))
    assert checked.deltas == fold(CATALOG, checked.events)
