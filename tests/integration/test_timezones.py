"""Months in the operation's timezone: DST (America/New_York) and +05:45 (Asia/Kathmandu)."""

from __future__ import annotations

import pytest

from tests.integration.support import FakeClock, ev, fig, page_rows
from voxmeter.entrypoints.wire.listing import list_events
from voxmeter.errors import BadParameters
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import create_operation

# America/New_York, 2026: EST (-05:00) until 8 March, EDT (-04:00) until 1 November.
NEW_YORK_EDGES = [
    ("2026-03-01T04:59:59.999999Z", "2026-02"),  # 28 Feb 23:59:59.999999 EST
    ("2026-03-01T05:00:00Z", "2026-03"),  # 1 Mar 00:00 EST
    ("2026-04-01T03:59:59.999999Z", "2026-03"),  # 31 Mar 23:59:59.999999 EDT
    ("2026-04-01T04:00:00Z", "2026-04"),  # 1 Apr 00:00 EDT
    ("2026-11-01T03:59:59.999999Z", "2026-10"),  # 31 Oct 23:59:59.999999 EDT
    ("2026-11-01T04:00:00Z", "2026-11"),  # 1 Nov 00:00 EDT (DST ends at 02:00 that night)
    ("2026-12-01T04:59:59.999999Z", "2026-11"),  # 30 Nov 23:59:59.999999 EST
    ("2026-12-01T05:00:00Z", "2026-12"),  # 1 Dec 00:00 EST
]


def test_new_york_month_edges_around_dst(make_ctx, clock: FakeClock) -> None:
    ctx = make_ctx(grace_days=400)  # keep every month open: this test is about placement
    clock.set("2026-12-01T06:00:00Z")
    op = create_operation(ctx, "nyc", "9901", "America/New_York")
    # Each edge event carries a distinct power of two, so every month's sum names its events.
    batch = [ev(f"e{i}", "rsync", t, 2**i) for i, (t, _) in enumerate(NEW_YORK_EDGES)]
    assert ingest_batch(ctx, op, batch).accepted == len(NEW_YORK_EDGES)
    expected: dict[str, int] = {}
    for i, (_, month) in enumerate(NEW_YORK_EDGES):
        expected[month] = expected.get(month, 0) + 2**i
    assert expected == {
        "2026-02": 1,
        "2026-03": 6,
        "2026-04": 8,
        "2026-10": 16,
        "2026-11": 96,
        "2026-12": 128,
    }
    for month in (
        "2026-01",
        "2026-02",
        "2026-03",
        "2026-04",
        "2026-05",
        "2026-09",
        "2026-10",
        "2026-11",
        "2026-12",
    ):
        assert fig(ctx, op, "rsync", month) == str(expected.get(month, 0)), month


def test_new_york_local_offsets_in_rfc3339_input(make_ctx, clock: FakeClock) -> None:
    ctx = make_ctx(grace_days=400)
    clock.set("2026-12-01T06:00:00Z")
    op = create_operation(ctx, "nyc", "9901", "America/New_York")
    ingest_batch(
        ctx,
        op,
        [
            ev("x1", "interactions", "2026-03-31T23:59:59-04:00"),  # local March
            ev("x2", "interactions", "2026-04-01T00:00:00-04:00"),  # local April
            ev("x3", "interactions", "2026-03-31T23:30:00-05:00"),  # = 1 Apr 00:30 EDT
            ev("x4", "interactions", "2026-11-30T23:59:59-05:00"),  # local November
            ev("x5", "interactions", "2026-12-01T03:00:00+02:00"),  # = 30 Nov 20:00 EST
            # The repeated hour of 1 November: 01:30 EDT and 01:30 EST, both November.
            ev("x6", "interactions", "2026-11-01T01:30:00-04:00"),
            ev("x7", "interactions", "2026-11-01T01:30:00-05:00"),
        ],
    )
    assert fig(ctx, op, "interactions", "2026-03") == "1"
    assert fig(ctx, op, "interactions", "2026-04") == "2"
    assert fig(ctx, op, "interactions", "2026-11") == "4"
    assert fig(ctx, op, "interactions", "2026-10") == "0"
    page = list_events(ctx, op, "20261101000000", "20261101235959", None, None)
    assert [(e["id"], e["time"]) for e in page_rows(page)] == [
        ("x6", "2026-11-01T01:30:00-04:00"),
        ("x7", "2026-11-01T01:30:00-05:00"),
    ]


def test_kathmandu_month_starts_at_1815_utc(make_ctx, clock: FakeClock) -> None:
    ctx = make_ctx(grace_days=400)
    clock.set("2026-05-01T00:00:00Z")
    op = create_operation(ctx, "ktm", "0042", "Asia/Kathmandu")
    ingest_batch(
        ctx,
        op,
        [
            ev("k1", "tts_chars", "2026-03-31T18:14:59.999999Z", "1"),  # 31 Mar 23:59:59.999999
            ev("k2", "tts_chars", "2026-03-31T18:15:00Z", "10"),  # 1 Apr 00:00 +05:45
            ev("k3", "tts_chars", "2026-04-01T00:00:00+05:45", "100"),  # same instant as k2
            ev("k4", "tts_chars", "2026-02-28T18:15:00Z", "1000"),  # 1 Mar 00:00 +05:45
            ev("k5", "tts_chars", "2026-02-28T18:14:59Z", "10000"),  # 28 Feb 23:59:59 local
        ],
    )
    assert fig(ctx, op, "tts_chars", "2026-02") == "10000"
    assert fig(ctx, op, "tts_chars", "2026-03") == "1001"
    assert fig(ctx, op, "tts_chars", "2026-04") == "110"
    page = list_events(ctx, op, "20260401000000", "20260401000000", None, None)
    assert [(e["id"], e["time"]) for e in page_rows(page)] == [
        ("k2", "2026-04-01T00:00:00+05:45"),
        ("k3", "2026-04-01T00:00:00+05:45"),
    ]


def test_late_events_land_in_their_own_month_while_it_is_open(ctx, clock: FakeClock) -> None:
    op = create_operation(ctx, "nyc", "9901", "America/New_York")
    # 3 Apr 2026 12:00 EDT: March (local) is still in its 3-day grace period.
    clock.set("2026-04-03T16:00:00Z")
    result = ingest_batch(
        ctx,
        op,
        [
            ev("late-1", "rsync", "2026-04-01T03:30:00Z", "4"),  # 31 Mar 23:30 EDT: March
            ev("late-2", "rsync", "2026-04-01T04:30:00Z", "1"),  # 1 Apr 00:30 EDT: April
            ev("late-3", "rsync", "2026-03-15T12:00:00Z", "0.5"),
        ],
    )
    assert (result.accepted, result.duplicates) == (3, 0)
    assert fig(ctx, op, "rsync", "2026-03") == "4.5"
    assert fig(ctx, op, "rsync", "2026-04") == "1"
    # February (local) ended more than 3 days ago: its late event is refused.
    with pytest.raises(BadParameters) as caught:
        ingest_batch(ctx, op, [ev("too-late", "rsync", "2026-03-01T04:59:59Z", "1")])
    assert caught.value.data == [{"index": 0, "field": "time", "error": "month 2026-02 is closed"}]
    # ...while the same UTC instant a second later is local March, still open.
    ok = ingest_batch(ctx, op, [ev("in-time", "rsync", "2026-03-01T05:00:00Z", "1")])
    assert ok.accepted == 1
    assert fig(ctx, op, "rsync", "2026-03") == "5.5"
