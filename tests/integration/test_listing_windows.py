"""Listing windows at DST changes: consecutive windows partition the timeline exactly.

A window `[date_ini, date_end]` runs from the first moment the operation's clock reads
`date_ini` (or later) up to the first moment it reads past `date_end`. Windows that meet (one
ends at X, the next starts at X + 1 s) then share one bound even when X falls in an hour the clock
skips (spring forward) or repeats (fall back).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.integration.support import FakeClock, ev, page_rows
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import calendar, from_micros
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.wire.listing import list_events
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.ports import Database
from voxmeter.service.tenancy import create_operation

SECOND = timedelta(seconds=1)


def _operation(ctx: Context, zone: str) -> Operation:
    count = len(ctx.storage.operations())
    return create_operation(ctx, f"op{count}", "9901", zone)


def _ids(ctx: Context, op: Operation, date_ini: str, date_end: str) -> list[str]:
    return [e["id"] for e in page_rows(list_events(ctx, op, date_ini, date_end, None, None))]


@pytest.fixture
def late_ctx(make_ctx, clock: FakeClock) -> Context:
    clock.set("2026-12-15T00:00:00Z")
    return make_ctx(grace_days=400)


@pytest.mark.parametrize(
    ("zone", "day", "split", "events"),
    [
        # New York springs forward at 02:00 EST to 03:00 EDT: 02:30 never happens.
        (
            "America/New_York",
            "20260308",
            "023000",
            {"before": "2026-03-08T01:45:00-05:00", "after": "2026-03-08T03:15:00-04:00"},
        ),
        # Chatham springs forward at 02:45 (+12:45) to 03:45 (+13:45): 03:00 never happens.
        (
            "Pacific/Chatham",
            "20260927",
            "030000",
            {"before": "2026-09-27T02:30:00+12:45", "after": "2026-09-27T03:50:00+13:45"},
        ),
    ],
)
def test_windows_meeting_in_a_skipped_hour_miss_nothing(
    late_ctx: Context, zone: str, day: str, split: str, events: dict[str, str]
) -> None:
    op = _operation(late_ctx, zone)
    ingest_batch(late_ctx, op, [ev(i, "rsync", t, "1") for i, t in events.items()])
    last = (datetime.strptime(day + split, "%Y%m%d%H%M%S") - SECOND).strftime("%Y%m%d%H%M%S")
    assert _ids(late_ctx, op, f"{day}000000", f"{day}235959") == ["before", "after"]
    assert _ids(late_ctx, op, f"{day}000000", last) == ["before"]
    assert _ids(late_ctx, op, f"{day}{split}", f"{day}235959") == ["after"]


def test_windows_meeting_in_a_repeated_hour_do_not_overlap(late_ctx: Context) -> None:
    """New York falls back at 02:00 EDT to 01:00 EST: 01:00-01:59 happens twice. A wall time
    names its first occurrence, so the window ending 01:29:59 ends at 01:30 EDT."""
    op = _operation(late_ctx, "America/New_York")
    times = {
        "edt-0115": "2026-11-01T01:15:00-04:00",
        "edt-0145": "2026-11-01T01:45:00-04:00",
        "est-0115": "2026-11-01T01:15:00-05:00",
        "est-0145": "2026-11-01T01:45:00-05:00",
    }
    ingest_batch(late_ctx, op, [ev(i, "rsync", t, "1") for i, t in times.items()])
    first = _ids(late_ctx, op, "20261101000000", "20261101012959")
    second = _ids(late_ctx, op, "20261101013000", "20261101235959")
    assert first == ["edt-0115"]
    assert second == ["edt-0145", "est-0115", "est-0145"]
    # A window reaching past the repeated hour holds both of its occurrences.
    assert _ids(late_ctx, op, "20261101010000", "20261101015959") == list(times)


# ---------------------------------------------------------------- property: exact partition


@cache
def transitions() -> list[tuple[str, int]]:
    """(zone, instant in epoch seconds) of every UTC-offset change in 2011, 2026 and 2100 (the
    last from the zones' rules for the far future), over every zone that has one."""
    found = []
    for name in sorted(zoneinfo.available_timezones()):
        zone = ZoneInfo(name)
        for year in (2011, 2026, 2100):
            start = datetime(year, 1, 1, tzinfo=UTC)
            previous = start.astimezone(zone).utcoffset()
            for day in range(1, 367):
                moment = start + timedelta(days=day)
                offset = moment.astimezone(zone).utcoffset()
                if offset != previous:
                    found.append((name, _change(zone, moment - timedelta(days=1), moment)))
                    previous = offset
    return found


def _change(zone: ZoneInfo, low: datetime, high: datetime) -> int:
    """The instant (whole seconds) where the offset at `low` turns into the one at `high`."""
    before = low.astimezone(zone).utcoffset()
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == before:
            lo = middle
        else:
            hi = middle
    return hi


def _epoch(utc_text: str) -> int:
    return int(datetime.fromisoformat(utc_text).replace(tzinfo=UTC).timestamp())


def _wall(day: date, seconds: int) -> str:
    return (datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)).strftime(
        "%Y%m%d%H%M%S"
    )


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    case=st.deferred(lambda: st.sampled_from(transitions())),
    data=st.data(),
)
@example(case=("America/New_York", _epoch("2026-03-08T07:00:00")), data=None)  # 02:00 EST
@example(case=("America/New_York", _epoch("2026-11-01T06:00:00")), data=None)  # 02:00 EDT
@example(case=("Pacific/Chatham", _epoch("2026-09-26T14:00:00")), data=None)  # 02:45 +12:45
@example(case=("Pacific/Apia", _epoch("2011-12-30T10:00:00")), data=None)  # 30 Dec skipped
@example(case=("America/Sao_Paulo", _epoch("2018-02-18T02:00:00")), data=None)  # 00:00->23:00
def test_consecutive_windows_partition_a_days_events(
    storage: Database, catalog: Catalog, case: tuple[str, int], data: st.DataObject | None
) -> None:
    name, change = case
    zone = ZoneInfo(name)
    clock = FakeClock("2101-06-01T00:00:00Z")
    ctx = Context(storage=storage, catalog=catalog, grace_days=100_000, clock=clock)
    op = _operation(ctx, name)
    # The local day the change happens in, and events all over it and just around the change.
    day = datetime.fromtimestamp(change, zone).date()
    start = calendar(name).day_start(day) - 3600 * 10**6
    end = calendar(name).day_start(day + timedelta(days=1)) + 3600 * 10**6
    micros = change * 10**6
    instants = sorted(
        {*range(start, end, 7 * 60 * 10**6), micros - 1, micros, micros + 1}
        | {micros + k * 60 * 10**6 for k in range(-150, 151, 15)}
    )
    batch = [
        ev(f"e{i:05d}", "rsync", from_micros(t, zone).isoformat(), "1")
        for i, t in enumerate(instants)
    ]
    ingest_batch(ctx, op, batch)

    # Split points: anywhere in the day, and near the wall times around the change.
    near = int((from_micros(micros, zone).replace(tzinfo=None) - _midnight(day)).total_seconds())
    if data is None:
        splits = sorted({near - 1800, near - 1, near, near + 1, near + 1800} & set(range(1, 86400)))
    else:
        anywhere = st.integers(1, 86399)
        around = st.integers(max(1, near - 7200), min(86399, near + 7200))
        drawn = data.draw(st.lists(st.one_of(anywhere, around), min_size=1, max_size=6))
        splits = sorted(set(drawn))
    bounds = [0, *splits, 86400]

    whole = _ids(ctx, op, _wall(day, 0), _wall(day, 86399))
    pieces = [_ids(ctx, op, _wall(day, a), _wall(day, b - 1)) for a, b in pairwise(bounds)]
    joined = [i for piece in pieces for i in piece]
    assert joined == whole, (name, day, splits)  # no gap, no overlap, same order
    assert len(set(joined)) == len(joined)
    # The model, from zoneinfo alone: an instant is in [a, b] when the latest time the clock
    # has shown by then (it may have been turned back since) is in [a, b + 1 s).
    shown = _latest_shown(zone, instants)
    midnight = _midnight(day)
    for (a, b), piece in zip(pairwise(bounds), pieces, strict=True):
        low, high = midnight + timedelta(seconds=a), midnight + timedelta(seconds=b)
        expected = [e.id for e, t in zip(batch, instants, strict=True) if low <= shown[t] < high]
        assert piece == expected, (name, day, a, b)


def _latest_shown(zone: ZoneInfo, instants: list[int]) -> dict[int, datetime]:
    """For each instant (sorted), the latest wall time the clock has shown up to it."""
    shown: dict[int, datetime] = {}
    latest: datetime | None = None
    previous: int | None = None
    for t in instants:
        if previous is not None and _offset(zone, previous) != _offset(zone, t):
            # Just before a change the clock shows the highest time of its stretch.
            change = _change(zone, _instant(previous), _instant(t))
            just_before = _reading(zone, change * 10**6 - 1)
            latest = just_before if latest is None else max(latest, just_before)
        now = _reading(zone, t)
        latest = now if latest is None else max(latest, now)
        shown[t] = latest
        previous = t
    return shown


def _instant(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _offset(zone: ZoneInfo, micros: int) -> timedelta | None:
    return _instant(micros).astimezone(zone).utcoffset()


def _reading(zone: ZoneInfo, micros: int) -> datetime:
    return _instant(micros).astimezone(zone).replace(tzinfo=None)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)
