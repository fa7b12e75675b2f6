"""The mirror schedule over a simulated day: what each sweep asks, how far apart sweeps are,
and that a day's requests stay within the budget (domain/mirrors.py)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from voxmeter.domain.catalog import Catalog
from voxmeter.domain.mirrors import (
    MICROS_PER_MINUTE,
    Failure,
    MirrorOptions,
    SyncState,
    after_failure,
    after_success,
    budget,
    is_stale,
    plan,
)
from voxmeter.domain.months import Month, to_micros

CATALOG = Catalog.load()
IN_USE = {"ivr_minutes", "rec_minutes", "interactions", "pbx_licenses"}
DAY_START = to_micros(datetime(2026, 5, 15, tzinfo=UTC))
DAY_END = DAY_START + 24 * 60 * MICROS_PER_MINUTE
DAY = datetime(2026, 5, 15).toordinal()
MONTH = Month(2026, 5).index


def simulate_day(
    licenses: int, supports_all: bool, in_use: set[str], state: SyncState | None = None
) -> tuple[int, list[int]]:
    """Sweep as scheduled from midnight to midnight; (requests spent, sweep instants)."""
    options = MirrorOptions(upstream_url=None)
    state = state or SyncState(supports_all=supports_all, supports_month=False)
    now, spent, sweeps = DAY_START, 0, []
    while now < DAY_END:
        state = state.today(DAY)
        sweep = plan(state, CATALOG, in_use, DAY, MONTH)
        cost = sweep.cost(state.supports_all)
        assert cost <= budget(options, state.quota) - state.spent
        sweeps.append(now)
        spent += cost
        if sweep.token_info:
            state = replace(state, quota=licenses * 1000, quota_day=DAY)
        if sweep.full:
            state = replace(state, full_day=DAY, full_month=MONTH)
        next_cost = 1 if supports_all else len(in_use)
        state = after_success(state, options, now, cost, next_cost, DAY_END)
        now = state.next_due
    return spent, sweeps


def test_a_one_licence_upstream_gets_at_most_a_quarter_of_its_quota() -> None:
    spent, sweeps = simulate_day(1, supports_all=False, in_use=IN_USE)
    assert spent <= 250
    assert len(sweeps) > 24  # still more than one sweep an hour
    first, *_ = sweeps
    assert first == DAY_START


def test_a_twenty_licence_upstream_is_swept_every_five_minutes() -> None:
    spent, sweeps = simulate_day(20, supports_all=False, in_use=IN_USE)
    gaps = {b - a for a, b in itertools.pairwise(sweeps)}
    assert gaps == {5 * MICROS_PER_MINUTE}
    assert len(sweeps) == 24 * 12
    assert spent <= 5000


def test_an_upstream_answering_api_all_costs_one_request_a_sweep() -> None:
    spent, sweeps = simulate_day(1, supports_all=True, in_use=IN_USE)
    assert spent == len(sweeps) + 1  # and one token_info
    assert len(sweeps) >= 240
    assert spent <= 250
    gaps = [b - a for a, b in itertools.pairwise(sweeps)]
    assert min(gaps) >= 5 * MICROS_PER_MINUTE


@settings(max_examples=40, deadline=None)
@given(
    licenses=st.integers(1, 30),
    used=st.sets(st.sampled_from([p.api for p in CATALOG]), max_size=27),
    supports_all=st.booleans(),
)
def test_no_day_spends_more_than_its_budget(
    licenses: int, used: set[str], supports_all: bool
) -> None:
    spent, sweeps = simulate_day(licenses, supports_all, used)
    assert spent <= licenses * 1000 // 4
    assert sweeps[0] == DAY_START


def test_every_product_is_asked_first_in_a_day_and_a_month_then_those_in_use() -> None:
    fresh = SyncState(supports_all=False)
    first = plan(fresh, CATALOG, IN_USE, DAY, MONTH)
    assert first.full
    assert len(first.products) == len(CATALOG)
    assert first.token_info
    swept = replace(fresh, full_day=DAY, full_month=MONTH, quota_day=DAY, quota=1000)
    later = plan(swept, CATALOG, IN_USE, DAY, MONTH)
    assert set(later.products) == IN_USE
    assert not later.full
    assert not later.token_info
    next_day = plan(swept, CATALOG, IN_USE, DAY + 1, MONTH)
    assert next_day.full
    assert next_day.token_info


def test_a_month_that_ended_is_frozen_once_asking_month_only_where_supported() -> None:
    swept = SyncState(full_day=DAY, full_month=MONTH, quota_day=DAY)
    after = plan(swept, CATALOG, IN_USE, DAY + 17, MONTH + 1)
    assert after.freeze_month == MONTH
    assert after.ask_month
    hosted = plan(replace(swept, supports_month=False), CATALOG, IN_USE, DAY + 17, MONTH + 1)
    assert hosted.freeze_month == MONTH
    assert not hosted.ask_month
    frozen = replace(swept, frozen_through=MONTH)
    assert plan(frozen, CATALOG, IN_USE, DAY + 17, MONTH + 1).freeze_month is None


def test_failures_back_off_by_kind() -> None:
    options = MirrorOptions(upstream_url=None)
    now = DAY_START + 10 * 60 * MICROS_PER_MINUTE
    quota = after_failure(SyncState(), options, now, 3, Failure.QUOTA, "quota", DAY_END)
    assert quota.next_due == DAY_END
    assert quota.spent == 3
    token = after_failure(SyncState(), options, now, 1, Failure.INVALID_TOKEN, "token", DAY_END)
    assert token.next_due == now + 24 * 60 * MICROS_PER_MINUTE
    state, gaps = SyncState(), []
    for _ in range(6):
        state = after_failure(state, options, now, 1, Failure.NETWORK, "down", DAY_END)
        gaps.append((state.next_due - now) // MICROS_PER_MINUTE)
    assert gaps == [5, 10, 20, 40, 60, 60]
    assert state.last_error == "down"
    assert state.last_ok is None


def test_staleness_follows_the_limit_or_the_spacing_the_budget_chose() -> None:
    options = MirrorOptions(upstream_url=None, stale_minutes=60)
    swept = SyncState(last_ok=DAY_START, gap=3 * 60 * MICROS_PER_MINUTE)
    assert not is_stale(swept, options, DAY_START + 5 * 60 * MICROS_PER_MINUTE, 0)
    assert is_stale(swept, options, DAY_START + 7 * 60 * MICROS_PER_MINUTE, 0)
    never = SyncState()
    created = DAY_START
    assert not is_stale(never, options, created + 30 * MICROS_PER_MINUTE, created)
    assert is_stale(
        never, options, created + timedelta(hours=2) // timedelta(microseconds=1), created
    )
