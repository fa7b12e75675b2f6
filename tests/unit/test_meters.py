"""Meters: folding events into per-(product, month) state, merging, figures
(docs/products.md, Billing rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voxmeter.domain.catalog import Aggregation, Catalog, Product
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.meters import (
    MeterKey,
    MeterState,
    contribution,
    figure,
    fold,
    merge,
    unique_total,
)
from voxmeter.domain.months import Month, calendar, to_micros
from voxmeter.domain.quantities import MICRO, from_micro

CATALOG = Catalog(
    [*Catalog.load(), Product(28, "agents_seen", "Agents seen", "agents", Aggregation.UNIQUE)]
)
AGG = {p.api: p.aggregation for p in CATALOG}
CAL = calendar("UTC")
DAY = 86_400_000_000
FIRST = Month(2026, 1).index
MONTHS = 4

SUM_PRODUCT = "rsync"
ROUND_UP_PRODUCT = "ivr_minutes"
COUNT_PRODUCT = "interactions"
MAX_PRODUCT = "agent_script"
UNIQUE_PRODUCT = "agents_seen"


def at(year: int, month: int, day: int, hour: int = 0) -> int:
    return to_micros(datetime(year, month, day, hour, tzinfo=UTC))


def event(
    product: str, time: int, quantity: int, subject: str | None = None, id: str = "e"
) -> UsageEvent:
    return UsageEvent(id, product, time, CAL.month_of(time), quantity, subject)


def units(n: str) -> int:
    """A decimal quantity in micro-units, e.g. units("2.01") == 2_010_000."""
    return int(Decimal(n) * MICRO)


# ------------------------------------------------------------------------ SPEC examples


@pytest.mark.parametrize(("quantity", "billed"), [("0.1", "1"), ("2.0", "2"), ("2.01", "3")])
def test_round_up_per_event_spec_examples(quantity: str, billed: str) -> None:
    deltas = fold(CATALOG, [event(ROUND_UP_PRODUCT, at(2026, 3, 5), units(quantity))])
    state = deltas[(ROUND_UP_PRODUCT, Month(2026, 3).index)]
    assert from_micro(figure(Aggregation.SUM_ROUND_UP, state, None)) == Decimal(billed)


def test_round_up_is_per_event_not_per_month() -> None:
    events = [event(ROUND_UP_PRODUCT, at(2026, 3, d), units(q)) for d, q in
              [(1, "0.1"), (2, "2.0"), (3, "2.01"), (4, "0.1")]]  # fmt: skip
    state = fold(CATALOG, events)[(ROUND_UP_PRODUCT, Month(2026, 3).index)]
    # Per event: 1 + 2 + 3 + 1 = 7 (a month total rounded once would be ceil(4.21) = 5).
    assert from_micro(figure(Aggregation.SUM_ROUND_UP, state, None)) == Decimal(7)


def test_plain_sum_keeps_fractions() -> None:
    events = [event(SUM_PRODUCT, at(2026, 3, d), units(q)) for d, q in
              [(1, "0.1"), (2, "2.0"), (3, "2.01"), (4, "0.000001")]]  # fmt: skip
    state = fold(CATALOG, events)[(SUM_PRODUCT, Month(2026, 3).index)]
    assert from_micro(figure(Aggregation.SUM, state, None)) == Decimal("4.110001")


def test_count_sums_quantities() -> None:
    events = [event(COUNT_PRODUCT, at(2026, 3, d), q * MICRO) for d, q in [(1, 1), (2, 1), (3, 5)]]
    state = fold(CATALOG, events)[(COUNT_PRODUCT, Month(2026, 3).index)]
    assert from_micro(figure(Aggregation.COUNT, state, None)) == Decimal(7)


def test_level_raised_then_lowered_gives_the_peak() -> None:
    raised = event(MAX_PRODUCT, at(2026, 3, 20), 12 * MICRO)
    lowered = event(MAX_PRODUCT, at(2026, 3, 25), 8 * MICRO)
    key = (MAX_PRODUCT, Month(2026, 3).index)
    for order in ([raised, lowered], [lowered, raised]):
        state = fold(CATALOG, order)[key]
        assert from_micro(figure(Aggregation.MAX, state, None)) == Decimal(12)
        # The level the next month starts at is the latest report by time: 8.
        assert state.last_time == at(2026, 3, 25)
        assert state.last_value == 8 * MICRO
    # Same, in two batches arriving in either order.
    for first, second in ([raised], [lowered]), ([lowered], [raised]):
        stored = merge(Aggregation.MAX, None, fold(CATALOG, first)[key])
        stored = merge(Aggregation.MAX, stored, fold(CATALOG, second)[key])
        assert from_micro(figure(Aggregation.MAX, stored, None)) == Decimal(12)
        assert stored.last_value == 8 * MICRO


def test_level_set_in_march_carries_to_every_later_month() -> None:
    march = fold(CATALOG, [event(MAX_PRODUCT, at(2026, 3, 10), 5 * MICRO)])
    state = march[(MAX_PRODUCT, Month(2026, 3).index)]
    assert from_micro(figure(Aggregation.MAX, state, None)) == Decimal(5)
    stored = store([[event(MAX_PRODUCT, at(2026, 3, 10), 5 * MICRO)]])
    assert read_figure(stored, MAX_PRODUCT, Month(2026, 2).index) == Decimal(0)
    for later in range(Month(2026, 3).index, Month(2027, 4).index):
        assert read_figure(stored, MAX_PRODUCT, later) == Decimal(5)


def test_level_at_month_start_counts_even_if_lowered_on_day_one() -> None:
    feb = fold(CATALOG, [event(MAX_PRODUCT, at(2026, 2, 10), 10 * MICRO)])
    carried = feb[(MAX_PRODUCT, Month(2026, 2).index)].last_value
    march = fold(CATALOG, [event(MAX_PRODUCT, at(2026, 3, 1, 0), 3 * MICRO)])
    march_state = march[(MAX_PRODUCT, Month(2026, 3).index)]
    assert from_micro(figure(Aggregation.MAX, march_state, carried)) == Decimal(10)
    # April starts at March's last level, 3.
    assert from_micro(figure(Aggregation.MAX, None, march_state.last_value)) == Decimal(3)


def test_level_raised_above_carried() -> None:
    state = fold(CATALOG, [event(MAX_PRODUCT, at(2026, 3, 5), 15 * MICRO)])
    key = (MAX_PRODUCT, Month(2026, 3).index)
    assert from_micro(figure(Aggregation.MAX, state[key], 10 * MICRO)) == Decimal(15)


def test_level_of_zero_is_a_report() -> None:
    key = (MAX_PRODUCT, Month(2026, 3).index)
    state = fold(CATALOG, [event(MAX_PRODUCT, at(2026, 3, 5), 0)])[key]
    assert state.last_time == at(2026, 3, 5)
    assert state.last_value == 0
    assert figure(Aggregation.MAX, state, None) == 0


# ------------------------------------------------------------------------- fold / merge


def test_fold_keys_by_product_and_month() -> None:
    events = [
        event(SUM_PRODUCT, at(2026, 3, 31, 23), MICRO),
        event(SUM_PRODUCT, at(2026, 4, 1), 2 * MICRO),
        event(COUNT_PRODUCT, at(2026, 4, 2), MICRO),
    ]
    deltas = fold(CATALOG, events)
    march, april = Month(2026, 3).index, Month(2026, 4).index
    assert set(deltas) == {(SUM_PRODUCT, march), (SUM_PRODUCT, april), (COUNT_PRODUCT, april)}
    assert deltas[(SUM_PRODUCT, march)].total == MICRO
    assert deltas[(SUM_PRODUCT, april)].total == 2 * MICRO
    assert deltas[(COUNT_PRODUCT, april)].total == MICRO


def test_fold_of_nothing_is_empty() -> None:
    assert fold(CATALOG, []) == {}


def test_fold_leaves_unique_to_storage() -> None:
    events = [event(UNIQUE_PRODUCT, at(2026, 3, 1), MICRO, s) for s in ["a", "b", "a"]]
    assert fold(CATALOG, events) == {(UNIQUE_PRODUCT, Month(2026, 3).index): MeterState()}


def test_fold_max_on_equal_times_the_later_arrival_wins() -> None:
    key = (MAX_PRODUCT, Month(2026, 3).index)
    same = at(2026, 3, 5)
    state = fold(
        CATALOG, [event(MAX_PRODUCT, same, 7 * MICRO), event(MAX_PRODUCT, same, 4 * MICRO)]
    )
    assert (state[key].total, state[key].last_time, state[key].last_value) == (
        7 * MICRO,
        same,
        4 * MICRO,
    )


def test_merge_max_on_equal_times_the_later_batch_wins() -> None:
    same = at(2026, 3, 5)
    stored = MeterState(7 * MICRO, same, 7 * MICRO)
    delta = MeterState(2 * MICRO, same, 2 * MICRO)
    assert merge(Aggregation.MAX, stored, delta) == MeterState(7 * MICRO, same, 2 * MICRO)


def test_merge_max_late_arrival_of_an_earlier_report_keeps_the_latest_level() -> None:
    stored = MeterState(8 * MICRO, at(2026, 3, 20), 8 * MICRO)
    delta = MeterState(15 * MICRO, at(2026, 3, 10), 15 * MICRO)
    assert merge(Aggregation.MAX, stored, delta) == MeterState(
        15 * MICRO, at(2026, 3, 20), 8 * MICRO
    )


def test_merge_max_with_an_empty_delta_keeps_the_stored_state() -> None:
    stored = MeterState(8 * MICRO, at(2026, 3, 20), 6 * MICRO)
    merged = merge(Aggregation.MAX, stored, MeterState())
    assert merged == stored
    assert merged is not stored


def test_merge_into_nothing_copies() -> None:
    delta = MeterState(5, at(2026, 3, 1), 5)
    merged = merge(Aggregation.MAX, None, delta)
    assert merged == delta
    assert merged is not delta
    merged.total = 99
    assert delta.total == 5


@pytest.mark.parametrize(
    "aggregation",
    [Aggregation.SUM, Aggregation.SUM_ROUND_UP, Aggregation.COUNT, Aggregation.UNIQUE],
)
def test_merge_summing_meters_adds(aggregation: Aggregation) -> None:
    stored = MeterState(3 * MICRO)
    merged = merge(aggregation, stored, MeterState(4 * MICRO + 1))
    assert merged.total == 7 * MICRO + 1
    assert stored.total == 3 * MICRO


@pytest.mark.parametrize(
    "aggregation",
    [Aggregation.SUM, Aggregation.SUM_ROUND_UP, Aggregation.COUNT, Aggregation.UNIQUE],
)
def test_carried_level_is_ignored_by_non_levels(aggregation: Aggregation) -> None:
    assert figure(aggregation, MeterState(5 * MICRO), 100 * MICRO) == 5 * MICRO
    assert figure(aggregation, None, 100 * MICRO) == 0


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_no_state_and_nothing_carried_is_zero(aggregation: Aggregation) -> None:
    assert figure(aggregation, None, None) == 0


def test_contribution() -> None:
    assert contribution(Aggregation.SUM_ROUND_UP, 100_000) == MICRO
    assert contribution(Aggregation.SUM_ROUND_UP, 0) == 0
    assert contribution(Aggregation.SUM, 100_000) == 100_000
    assert contribution(Aggregation.COUNT, 3 * MICRO) == 3 * MICRO


def test_unique_total() -> None:
    assert unique_total(0) == 0
    assert from_micro(unique_total(3)) == Decimal(3)


def test_figures_stay_exact_for_huge_totals() -> None:
    # Ten million events of the largest quantity: integers never overflow or round.
    big = 10**18
    state = MeterState()
    for _ in range(10):
        state = merge(Aggregation.SUM, state, MeterState(big * 1_000_000 + 1))
    assert figure(Aggregation.SUM, state, None) == 10**25 + 10


# ------------------------------------------------------------------ model-based property


@dataclass(frozen=True)
class Draft:
    product: str
    month: int
    offset: int
    quantity: int
    subject: str | None


QUANTITIES = {
    Aggregation.SUM: st.integers(min_value=0, max_value=10**13),
    Aggregation.SUM_ROUND_UP: st.integers(min_value=0, max_value=5 * MICRO)
    | st.sampled_from([0, 1, 100_000, MICRO, 2 * MICRO, 2_010_000]),
    Aggregation.COUNT: st.integers(min_value=1, max_value=5).map(lambda n: n * MICRO),
    Aggregation.MAX: st.integers(min_value=0, max_value=20 * MICRO)
    | st.sampled_from([0, 5 * MICRO, 12 * MICRO]),
    Aggregation.UNIQUE: st.just(MICRO),
}
PRODUCTS = [SUM_PRODUCT, ROUND_UP_PRODUCT, COUNT_PRODUCT, MAX_PRODUCT, "amazon_s3", UNIQUE_PRODUCT]
# Few distinct offsets make equal times (and so arrival-order tie breaks) common.
OFFSETS = st.one_of(
    st.sampled_from([0, 5 * DAY, 28 * DAY - 1]),
    st.sampled_from([1, 5 * DAY + 1]),
    st.integers(min_value=0, max_value=28 * DAY - 1),
)


@st.composite
def drafts(draw: st.DrawFn) -> Draft:
    product = draw(st.sampled_from(PRODUCTS))
    aggregation = AGG[product]
    subject = draw(st.sampled_from("abcd")) if aggregation is Aggregation.UNIQUE else None
    return Draft(
        product=product,
        month=FIRST + draw(st.integers(min_value=0, max_value=MONTHS - 1)),
        offset=draw(OFFSETS),
        quantity=draw(QUANTITIES[aggregation]),
        subject=subject,
    )


@st.composite
def arrivals(draw: st.DrawFn) -> list[list[UsageEvent]]:
    """Random events, split into random batches, the batches arriving in random order."""
    items = draw(st.lists(drafts(), max_size=40))
    events = []
    for n, d in enumerate(items):
        start, end = CAL.window(d.month)
        time = start + d.offset
        assert start <= time < end
        events.append(UsageEvent(f"e{n}", d.product, time, d.month, d.quantity, d.subject))
    count = draw(st.integers(min_value=1, max_value=max(1, len(events))))
    batch_of = draw(st.lists(st.integers(0, count - 1), min_size=len(events), max_size=len(events)))
    order = draw(st.permutations(range(count)))
    return [[e for e, b in zip(events, batch_of, strict=True) if b == batch] for batch in order]


def store(batches: list[list[UsageEvent]]) -> dict[MeterKey, MeterState]:
    """What storage does: fold each batch, count new unique subjects, merge sequentially."""
    stored: dict[MeterKey, MeterState] = {}
    subjects: dict[MeterKey, set[str | None]] = {}
    for batch in batches:
        deltas = fold(CATALOG, batch)
        assert set(deltas) == {(e.product, e.month) for e in batch}
        for key in deltas:
            if AGG[key[0]] is Aggregation.UNIQUE:
                assert deltas[key] == MeterState()
                seen = subjects.setdefault(key, set())
                new = {e.subject for e in batch if (e.product, e.month) == key} - seen
                seen |= new
                deltas[key] = MeterState(unique_total(len(new)))
        for key, delta in deltas.items():
            stored[key] = merge(AGG[key[0]], stored.get(key), delta)
    return stored


def read_figure(stored: dict[MeterKey, MeterState], product: str, month: int) -> Decimal:
    aggregation = AGG[product]
    carried = None
    if aggregation.is_level:
        earlier = [m for p, m in stored if p == product and m < month]
        if earlier:
            carried = stored[(product, max(earlier))].last_value
    return from_micro(figure(aggregation, stored.get((product, month)), carried))


def reference(arrived: list[UsageEvent], product: str, month: int) -> Decimal:
    """The month's figure computed directly from all events, in Decimal."""
    aggregation = AGG[product]
    start, _ = CAL.window(month)
    mine = [e for e in arrived if e.product == product]
    in_month = [e for e in mine if start <= e.time < CAL.window(month)[1]]
    values = [Decimal(e.quantity) / MICRO for e in in_month]
    if aggregation in (Aggregation.SUM, Aggregation.COUNT):
        return sum(values, Decimal(0))
    if aggregation is Aggregation.SUM_ROUND_UP:
        return sum((v.to_integral_value(rounding=ROUND_CEILING) for v in values), Decimal(0))
    if aggregation is Aggregation.UNIQUE:
        return Decimal(len({e.subject for e in in_month}))
    # A level: the last report before the month (by time; on equal times the later arrival),
    # then the highest level reported during the month.
    before = [
        (e.time, seq, e.quantity)
        for seq, e in enumerate(arrived)
        if e.product == product and e.time < start
    ]
    levels = list(values)
    if before:
        levels.append(Decimal(max(before)[2]) / MICRO)
    return max(levels, default=Decimal(0))


_MARCH_5 = CAL.window(Month(2026, 3).index)[0] + 4 * DAY
_TIE_ACROSS_BATCHES = [
    [event(MAX_PRODUCT, _MARCH_5, 9 * MICRO, id="a")],
    [event(MAX_PRODUCT, _MARCH_5, 4 * MICRO, id="b")],
]
_TIE_IN_BATCH = [
    [
        event(MAX_PRODUCT, _MARCH_5, 9 * MICRO, id="a"),
        event(MAX_PRODUCT, _MARCH_5, 4 * MICRO, id="b"),
    ]
]
_LATE_EARLIER_REPORT = [
    [event(MAX_PRODUCT, _MARCH_5 + DAY, 2 * MICRO, id="a")],
    [event(MAX_PRODUCT, _MARCH_5, 7 * MICRO, id="b")],
]


@settings(max_examples=300, deadline=None, database=None)
@given(arrivals())
@example(_TIE_ACROSS_BATCHES)
@example(_TIE_IN_BATCH)
@example(_LATE_EARLIER_REPORT)
def test_every_aggregation_matches_the_reference_model(batches: list[list[UsageEvent]]) -> None:
    arrived = [e for batch in batches for e in batch]
    stored = store(batches)
    # Every month of the range, plus later months with no events (levels carry forward).
    for product in PRODUCTS:
        for month in range(FIRST - 1, FIRST + MONTHS + 3):
            assert read_figure(stored, product, month) == reference(arrived, product, month), (
                product,
                Month.from_index(month),
            )


@settings(max_examples=200, deadline=None, database=None)
@given(arrivals())
def test_batching_does_not_change_figures(batches: list[list[UsageEvent]]) -> None:
    one_batch = store([[e for batch in batches for e in batch]])
    one_each = store([[e] for batch in batches for e in batch])
    many = store(batches)
    for product in PRODUCTS:
        for month in range(FIRST, FIRST + MONTHS + 1):
            expected = read_figure(one_batch, product, month)
            assert read_figure(many, product, month) == expected
            assert read_figure(one_each, product, month) == expected
