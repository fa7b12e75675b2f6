"""Event validation (docs/api.md, Ingest): every rule, every problem, correct accepted events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voxmeter.domain.batch import validate_batch
from voxmeter.domain.catalog import Aggregation, Catalog, Product
from voxmeter.domain.events import MAX_FUTURE_MICROS, Problem, UsageEvent
from voxmeter.domain.months import Month, ZoneCalendar, calendar, to_micros
from voxmeter.domain.quantities import MICRO, QuantityError, to_micro
from voxmeter.entrypoints.wire.codec import EventIn

CATALOG = Catalog(
    [*Catalog.load(), Product(28, "agents_seen", "Agents seen", "agents", Aggregation.UNIQUE)]
)
NOW_DT = datetime(2026, 5, 15, 12, tzinfo=UTC)
NOW = to_micros(NOW_DT)
T = datetime(2026, 5, 10, 8, 30, tzinfo=UTC)
UTC_CAL = calendar("UTC")

SUM, ROUND_UP, COUNT, MAX, UNIQUE = (
    "rsync",
    "ivr_minutes",
    "interactions",
    "agent_script",
    "agents_seen",
)


def ev(
    product: str = SUM,
    quantity: str | Decimal | None = "1",
    *,
    id: str = "e-1",
    time: datetime = T,
    subject: str | None = None,
) -> EventIn:
    value = Decimal(quantity) if isinstance(quantity, str) else quantity
    return EventIn(id=id, product=product, time=time, quantity=value, subject=subject)


def check(
    incoming: list[EventIn], cal: ZoneCalendar = UTC_CAL, now: int = NOW
) -> tuple[list[UsageEvent], list[Problem]]:
    return validate_batch(incoming, CATALOG, cal, now)  # type: ignore[arg-type]


def only_problem_in(incoming: EventIn, cal: ZoneCalendar) -> Problem:
    events, problems = check([incoming], cal)
    assert events == []
    assert len(problems) == 1, problems
    return problems[0]


def only_problem(incoming: EventIn) -> Problem:
    return only_problem_in(incoming, UTC_CAL)


# ------------------------------------------------------------------------ valid events


def test_valid_events_come_back_exact() -> None:
    incoming = [
        ev(SUM, "1.5", id="a"),
        ev(ROUND_UP, "0.1", id="b"),
        ev(COUNT, None, id="c"),
        ev(COUNT, "3", id="d"),
        ev(MAX, "12", id="e"),
        ev(UNIQUE, None, id="f", subject="agent-7"),
        ev(SUM, "0", id="g"),
        ev(MAX, "0.000001", id="h"),
        ev(SUM, "1E+12", id="i"),
        ev(COUNT, "2.000", id="j"),
    ]
    events, problems = check(incoming)
    assert problems == []
    micros = to_micros(T)
    may = Month(2026, 5).index
    assert events == [
        UsageEvent("a", SUM, micros, may, 1_500_000, None),
        UsageEvent("b", ROUND_UP, micros, may, 100_000, None),
        UsageEvent("c", COUNT, micros, may, MICRO, None),
        UsageEvent("d", COUNT, micros, may, 3 * MICRO, None),
        UsageEvent("e", MAX, micros, may, 12 * MICRO, None),
        UsageEvent("f", UNIQUE, micros, may, MICRO, "agent-7"),
        UsageEvent("g", SUM, micros, may, 0, None),
        UsageEvent("h", MAX, micros, may, 1, None),
        UsageEvent("i", SUM, micros, may, 10**18, None),
        UsageEvent("j", COUNT, micros, may, 2 * MICRO, None),
    ]


def test_time_is_converted_from_its_offset() -> None:
    bogota = timezone(timedelta(hours=-5))
    moment = datetime(2026, 4, 30, 22, 0, 0, 250_000, tzinfo=bogota)  # 2026-05-01T03:00:00.25Z
    (event,), problems = check([ev(time=moment)])
    assert problems == []
    assert event.time == to_micros(datetime(2026, 5, 1, 3, 0, 0, 250_000, tzinfo=UTC))
    assert event.month == Month(2026, 5).index


def test_month_is_in_the_calendars_timezone() -> None:
    moment = datetime(2026, 5, 1, 3, tzinfo=UTC)  # 23:00 on 30 April in New York
    for tz, month in [("UTC", (2026, 5)), ("America/New_York", (2026, 4))]:
        (event,), _ = check([ev(time=moment)], calendar(tz))
        assert event.month == Month(*month).index, tz
    for moment, month in [
        (datetime(2026, 4, 30, 18, 14, 59, tzinfo=UTC), (2026, 4)),
        (datetime(2026, 4, 30, 18, 15, tzinfo=UTC), (2026, 5)),
    ]:
        (event,), _ = check([ev(time=moment)], calendar("Asia/Kathmandu"))
        assert event.month == Month(*month).index


def test_exactly_five_minutes_ahead_is_accepted() -> None:
    events, problems = check([ev(time=NOW_DT + timedelta(minutes=5))])
    assert problems == []
    assert events[0].time == NOW + MAX_FUTURE_MICROS


def test_first_supported_instant_is_accepted() -> None:
    events, problems = check([ev(time=datetime(1970, 1, 1, tzinfo=UTC))])
    assert problems == []
    assert events[0].time == 0
    assert events[0].month == Month(1970, 1).index


def test_mixed_batch_returns_the_valid_events_and_the_problems() -> None:
    events, problems = check([ev(id="ok1"), ev("nope", id="bad"), ev(id="ok2")])
    assert [e.id for e in events] == ["ok1", "ok2"]
    assert [(p.index, p.field) for p in problems] == [(1, "product")]


def test_ids_and_subjects_are_kept_verbatim() -> None:
    long_id = "x" * 128
    (event,), problems = check([ev(UNIQUE, None, id=long_id, subject=" Agent 7 ")])
    assert problems == []
    assert event.id == long_id
    assert event.subject == " Agent 7 "


def test_subject_on_other_products_is_kept() -> None:
    (event,), _ = check([ev(SUM, "2", subject="queue-1")])
    assert event.subject == "queue-1"


def test_unique_product_may_carry_a_quantity() -> None:
    (event,), problems = check([ev(UNIQUE, "2.5", subject="s")])
    assert problems == []
    assert event.quantity == 2_500_000


# ----------------------------------------------------------------------------- problems


def test_unknown_product() -> None:
    problem = only_problem(ev("ivr-minutes"))
    assert (problem.index, problem.field) == (0, "product")
    assert "ivr-minutes" in problem.error


def test_all_is_not_a_product() -> None:
    assert only_problem(ev("all")).field == "product"


def test_more_than_five_minutes_in_the_future() -> None:
    problem = only_problem(ev(time=NOW_DT + timedelta(minutes=5, microseconds=1)))
    assert (problem.index, problem.field) == (0, "time")
    assert "future" in problem.error
    assert only_problem(ev(time=datetime(2199, 12, 1, tzinfo=UTC))).field == "time"


@pytest.mark.parametrize(
    ("tz", "moment"),
    [
        ("UTC", datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        ("UTC", datetime(1900, 1, 1, tzinfo=UTC)),
        ("UTC", datetime(1, 1, 1, tzinfo=UTC)),
        # 1970-01-01 00:00 New York is 05:00Z: 04:59Z is still in 1969 there.
        ("America/New_York", datetime(1970, 1, 1, 4, 59, tzinfo=UTC)),
    ],
)
def test_time_before_the_supported_years(tz: str, moment: datetime) -> None:
    problem = only_problem_in(ev(time=moment), calendar(tz))
    assert (problem.index, problem.field) == (0, "time")
    assert "supported years" in problem.error


def test_time_after_the_supported_years() -> None:
    # A server clock far ahead: the future rule no longer applies, the year range does.
    now = to_micros(datetime(2300, 1, 1, tzinfo=UTC))
    events, problems = check([ev(time=datetime(2200, 1, 1, tzinfo=UTC))], now=now)
    assert events == []
    assert [(p.index, p.field) for p in problems] == [(0, "time")]
    assert "supported years" in problems[0].error
    events, problems = check([ev(time=datetime(2199, 12, 31, 23, 59, tzinfo=UTC))], now=now)
    assert problems == []
    assert events[0].month == Month(2199, 12).index


@pytest.mark.parametrize("product", [SUM, ROUND_UP, MAX, "amazon_s3", "tts_chars"])
def test_quantity_required_for_sum_and_max(product: str) -> None:
    problem = only_problem(ev(product, None))
    assert (problem.index, problem.field) == (0, "quantity")
    assert "required" in problem.error


@pytest.mark.parametrize("quantity", ["0.5", "1.5", "2.000001", "0.000001"])
def test_count_quantity_must_be_whole(quantity: str) -> None:
    problem = only_problem(ev(COUNT, quantity))
    assert (problem.index, problem.field) == (0, "quantity")
    assert "whole number" in problem.error


@pytest.mark.parametrize("quantity", ["0", "0.0", "-0"])
def test_count_quantity_zero(quantity: str) -> None:
    problem = only_problem(ev(COUNT, quantity))
    assert (problem.index, problem.field) == (0, "quantity")
    assert "at least 1" in problem.error


@pytest.mark.parametrize("product", [SUM, ROUND_UP, COUNT, MAX])
@pytest.mark.parametrize(
    ("quantity", "words"),
    [
        ("-1", "negative"),
        ("-0.000001", "negative"),
        ("1.0000001", "decimal places"),
        ("0.1234567", "decimal places"),
        ("1E-7", "decimal places"),
        ("1E-999999999", "decimal places"),
        ("NaN", "finite"),
        ("sNaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        ("1000000000000.000001", "exceed"),
        ("1E+13", "exceed"),
        ("1E+999999999", "exceed"),
    ],
)
def test_bad_quantities(product: str, quantity: str, words: str) -> None:
    problem = only_problem(ev(product, quantity))
    assert (problem.index, problem.field) == (0, "quantity")
    assert words in problem.error


@pytest.mark.parametrize(
    "quantity",
    ["1.00000000000000000000000000001", "999999999999.9999999999999999999"],
)
def test_long_coefficient_with_seventh_decimal_is_reported(quantity: str) -> None:
    """An event refused by the fast check must never vanish without a problem."""
    problem = only_problem(ev(SUM, quantity))
    assert (problem.index, problem.field) == (0, "quantity")
    assert "decimal places" in problem.error


@pytest.mark.parametrize("bad_id", ["a\nb", "tab\there", "nul\x00", "\x7f", "bell\a", "\u200b"])
def test_non_printable_id(bad_id: str) -> None:
    problem = only_problem(ev(id=bad_id))
    assert (problem.index, problem.field) == (0, "id")
    assert "printable" in problem.error


@pytest.mark.parametrize("subject", ["agent\x00", "a\nb", "\u200b"])
def test_non_printable_subject(subject: str) -> None:
    """Stored as text by every backend (PostgreSQL refuses NUL), so refused up front."""
    problem = only_problem(ev(UNIQUE, None, subject=subject))
    assert (problem.index, problem.field) == (0, "subject")
    assert "printable" in problem.error


@pytest.mark.parametrize("subject", [None, ""])
def test_unique_without_subject(subject: str | None) -> None:
    problem = only_problem(ev(UNIQUE, None, subject=subject))
    assert (problem.index, problem.field) == (0, "subject")
    assert "required" in problem.error


def test_every_problem_of_a_batch_is_reported() -> None:
    incoming = [
        ev(id="ok-0"),
        ev("nope", id="e1"),
        ev(id="ok-2"),
        ev(time=NOW_DT + timedelta(hours=1), id="e3"),
        ev(SUM, None, id="e4"),
        ev(COUNT, "1.5", id="e5"),
        ev(COUNT, "0", id="e6"),
        ev(SUM, "-2", id="e7"),
        ev(SUM, "0.0000001", id="e8"),
        ev(SUM, "NaN", id="e9"),
        ev(id="e\n10"),
        ev(UNIQUE, None, id="e11"),
        ev(time=datetime(1960, 1, 1, tzinfo=UTC), id="e12"),
        ev(MAX, "Infinity", id="e13"),
        ev(MAX, None, id="e14"),
        ev(id="ok-15"),
    ]
    events, problems = check(incoming)
    assert [e.id for e in events] == ["ok-0", "ok-2", "ok-15"]
    assert [(p.index, p.field) for p in problems] == [
        (1, "product"),
        (3, "time"),
        (4, "quantity"),
        (5, "quantity"),
        (6, "quantity"),
        (7, "quantity"),
        (8, "quantity"),
        (9, "quantity"),
        (10, "id"),
        (11, "subject"),
        (12, "time"),
        (13, "quantity"),
        (14, "quantity"),
    ]
    assert all(p.error for p in problems)


def test_one_event_with_several_problems_reports_each() -> None:
    bad = ev("nope", "-1", id="bad\x00id", time=NOW_DT + timedelta(days=1))
    events, problems = check([ev(), bad])
    assert len(events) == 1
    assert sorted(p.field for p in problems) == ["id", "product", "quantity", "time"]
    assert {p.index for p in problems} == {1}


def test_problem_as_dict() -> None:
    problem = only_problem(ev("nope"))
    assert problem.as_dict() == {"index": 0, "field": "product", "error": problem.error}
    assert list(problem.as_dict()) == ["index", "field", "error"]


def test_large_batch_indices() -> None:
    incoming = [ev(id=f"id-{n}") for n in range(10_000)]
    incoming[9_999] = ev("nope", id="last")
    incoming[4_321] = ev(COUNT, "0.5", id="mid")
    events, problems = check(incoming)
    assert len(events) == 9_998
    assert [(p.index, p.field) for p in problems] == [(4_321, "quantity"), (9_999, "product")]


# --------------------------------------------------------------------------- property


def _reference_micro(value: Decimal | None) -> int | None:
    if value is None:
        return MICRO
    try:
        return to_micro(value)
    except QuantityError:
        return None


quantities = (
    st.none()
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.builds(
        lambda c, e: Decimal(c).scaleb(e),
        st.integers(min_value=-(10**35), max_value=10**35),
        st.integers(min_value=-40, max_value=12),
    )
)
products = st.sampled_from([SUM, ROUND_UP, COUNT, MAX, UNIQUE, "nope"])
offsets = st.integers(min_value=-(10**16), max_value=10**9)
ids = st.text(min_size=1, max_size=8)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(products, quantities, offsets, ids, st.none() | st.text(max_size=3))))
@example([(SUM, Decimal("1.00000000000000000000000000001"), 0, "a", None)])
def test_every_event_is_either_accepted_or_reported(
    drafts: list[tuple[str, Decimal | None, int, str, str | None]],
) -> None:
    incoming = [
        ev(p, q, id=i, time=NOW_DT + timedelta(microseconds=o), subject=s)
        for p, q, o, i, s in drafts
    ]
    events, problems = check(incoming)
    reported = {p.index for p in problems}
    accepted = iter(events)
    for index, item in enumerate(incoming):
        if index in reported:
            continue
        event = next(accepted, None)
        assert event is not None, f"event {index} neither accepted nor reported: {item}"
        assert event.id == item.id
        assert event.quantity == _reference_micro(item.quantity)
        assert event.time == to_micros(item.time)
    assert next(accepted, None) is None
    assert all(0 <= p.index < len(incoming) for p in problems)
