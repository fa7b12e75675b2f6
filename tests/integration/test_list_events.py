"""list_events: local-time windows, product filter, the 31-day limit, cursor paging, voids."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from tests.integration.support import FakeClock, ev, page_rows
from voxmeter.domain.months import to_micros
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.wire.errors import message
from voxmeter.entrypoints.wire.listing import list_events
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import create_operation


@pytest.fixture
def nyc(make_ctx, clock: FakeClock) -> tuple[Context, Operation]:
    ctx = make_ctx(grace_days=400)
    clock.set("2026-12-15T00:00:00Z")
    return ctx, create_operation(ctx, "nyc", "9901", "America/New_York")


def ids(page) -> list[str]:
    return [e["id"] for e in page_rows(page)]


def test_window_is_in_operation_time_and_the_end_second_is_included(nyc) -> None:
    ctx, op = nyc
    # 10 May 2026 in New York is EDT (-04:00).
    ingest_batch(
        ctx,
        op,
        [
            ev("before", "rsync", "2026-05-10T13:59:59.999999Z", "1"),  # 09:59:59.999999 local
            ev("at-start", "rsync", "2026-05-10T14:00:00Z", "1"),  # 10:00:00 local
            ev("inside", "interactions", "2026-05-10T15:00:00Z"),
            ev("at-end", "rsync", "2026-05-10T16:30:00Z", "1"),  # 12:30:00 local
            ev("end-second", "rsync", "2026-05-10T16:30:00.999999Z", "1"),  # 12:30:00.999999
            ev("after", "rsync", "2026-05-10T16:30:01Z", "1"),  # 12:30:01 local
            ev("utc-day", "rsync", "2026-05-10T03:00:00Z", "1"),  # 9 May 23:00 local
        ],
    )
    page = list_events(ctx, op, "20260510100000", "20260510123000", None, None)
    assert ids(page) == ["at-start", "inside", "at-end", "end-second"]
    assert page.next_cursor is None
    assert page_rows(page)[0] == {
        "id": "at-start",
        "product": "rsync",
        "time": "2026-05-10T10:00:00-04:00",
        "quantity": "1",
        "subject": None,
        "voided": False,
    }
    assert page_rows(page)[3]["time"] == "2026-05-10T12:30:00.999999-04:00"
    day = list_events(ctx, op, "20260510000000", "20260510235959", None, None)
    assert "utc-day" not in ids(day)
    assert ids(list_events(ctx, op, "20260509000000", "20260509235959", None, None)) == ["utc-day"]
    # One-second window.
    assert ids(list_events(ctx, op, "20260510123000", "20260510123000", None, None)) == [
        "at-end",
        "end-second",
    ]


def test_product_filter(nyc) -> None:
    ctx, op = nyc
    ingest_batch(
        ctx,
        op,
        [
            ev("r1", "rsync", "2026-05-10T15:00:00Z", "1"),
            ev("i1", "interactions", "2026-05-10T15:00:01Z"),
            ev("r2", "rsync", "2026-05-10T15:00:02Z", "2.5"),
            ev("t1", "tts_chars", "2026-05-10T15:00:03Z", "4"),
        ],
    )
    window = ("20260510000000", "20260510235959")
    assert ids(list_events(ctx, op, *window, "rsync", None)) == ["r1", "r2"]
    assert ids(list_events(ctx, op, *window, "interactions", None)) == ["i1"]
    assert ids(list_events(ctx, op, *window, "vision", None)) == []
    assert ids(list_events(ctx, op, *window, None, None)) == ["r1", "i1", "r2", "t1"]
    with pytest.raises(BadParameters):
        list_events(ctx, op, *window, "no_such_product", None)


@pytest.mark.parametrize(
    ("date_ini", "date_end"),
    [
        ("20260101000000", "20260301000000"),
        ("20260301000000", "20260402000000"),  # 32 days
        ("20260301000000", "20260401000001"),  # 31 days and 1 second
        ("20260510000000", "20260509235959"),  # end before start
        ("2026051000000", "20260510235959"),  # 13 digits
        ("20261310000000", "20261311000000"),  # month 13
        (None, "20260510235959"),
        ("20260510000000", ""),
    ],
)
def test_bad_windows_are_refused(nyc, date_ini, date_end) -> None:
    ctx, op = nyc
    with pytest.raises(BadParameters) as caught:
        list_events(ctx, op, date_ini, date_end, None, None)
    assert message(caught.value).startswith("SOME PARAMETERS ARE REQUIRED: ")


def test_a_31_day_window_is_allowed(nyc) -> None:
    ctx, op = nyc
    ingest_batch(
        ctx,
        op,
        [
            ev("first", "rsync", "2026-03-01T05:00:00Z", "1"),  # 1 Mar 00:00 EST
            ev("last", "rsync", "2026-04-01T03:59:59Z", "1"),  # 31 Mar 23:59:59 EDT
        ],
    )
    page = list_events(ctx, op, "20260301000000", "20260331235959", None, None)
    assert ids(page) == ["first", "last"]
    page = list_events(ctx, op, "20260301000000", "20260401000000", None, None)
    assert ids(page) == ["first", "last"]


def test_cursor_paging_returns_every_event_exactly_once_in_time_seq_order(nyc) -> None:
    ctx, op = nyc
    rng = random.Random(7)
    base = datetime.fromisoformat("2026-06-01T04:00:00+00:00")  # 1 June 00:00 EDT
    events = []
    for n in range(157):
        # Few distinct instants, so many events share a time and seq must break the tie.
        moment = base + timedelta(hours=rng.randrange(0, 30 * 24, 37))
        events.append(
            ev(
                f"p{n:03d}",
                rng.choice(["rsync", "tts_chars"]),
                moment.isoformat(),
                str(rng.randrange(1, 100)),
            )
        )
    # Arrival order differs from time order: several batches, shuffled.
    rng.shuffle(events)
    for start in range(0, len(events), 40):
        ingest_batch(ctx, op, events[start : start + 40])
    arrival = {e.id: n for n, e in enumerate(events)}
    expected = sorted(events, key=lambda e: (to_micros(e.time), arrival[e.id]))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = list_events(ctx, op, "20260601000000", "20260630235959", None, cursor, limit=6)
        pages += 1
        assert 1 <= len(page_rows(page)) <= 6
        seen += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [e.id for e in expected]
    assert len(seen) == len(set(seen)) == 157
    assert pages == 27  # ceil(157 / 6)
    # The product filter pages the same way.
    cursor = None
    rsync: list[str] = []
    while True:
        page = list_events(ctx, op, "20260601000000", "20260630235959", "rsync", cursor, limit=4)
        rsync += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert rsync == [e.id for e in expected if e.product == "rsync"]


def test_an_exact_final_page_has_no_cursor(nyc) -> None:
    ctx, op = nyc
    ingest_batch(ctx, op, [ev(f"e{n}", "rsync", "2026-06-02T00:00:00Z", "1") for n in range(6)])
    first = list_events(ctx, op, "20260601000000", "20260630235959", None, None, limit=3)
    assert ids(first) == ["e0", "e1", "e2"]
    second = list_events(
        ctx, op, "20260601000000", "20260630235959", None, first.next_cursor, limit=3
    )
    assert ids(second) == ["e3", "e4", "e5"]
    assert second.next_cursor is None
    with pytest.raises(BadParameters):
        list_events(ctx, op, "20260601000000", "20260630235959", None, "not-a-cursor!")


def test_voided_events_are_listed_as_voided(nyc) -> None:
    ctx, op = nyc
    ingest_batch(
        ctx,
        op,
        [
            ev("keep", "rsync", "2026-06-02T00:00:00Z", "1.5"),
            ev("drop", "rsync", "2026-06-03T00:00:00Z", "2.25"),
        ],
    )
    void_event(ctx, op, "drop")
    page = list_events(ctx, op, "20260601000000", "20260630235959", None, None)
    assert page_rows(page) == [
        {
            "id": "keep",
            "product": "rsync",
            "time": "2026-06-01T20:00:00-04:00",
            "quantity": "1.5",
            "subject": None,
            "voided": False,
        },
        {
            "id": "drop",
            "product": "rsync",
            "time": "2026-06-02T20:00:00-04:00",
            "quantity": "2.25",
            "subject": None,
            "voided": True,
        },
    ]


@pytest.mark.parametrize("day", ["20260308", "20261101"])
def test_hourly_windows_of_a_dst_day_list_every_event_exactly_once(nyc, day: str) -> None:
    """Consecutive windows (HH:00:00 .. HH:59:59) tile a day, also when DST starts or ends."""
    ctx, op = nyc
    start = datetime.strptime(day, "%Y%m%d").replace(hour=5)  # local midnight EST, as UTC
    batch = [
        ev(f"q{m:03d}", "interactions", (start + timedelta(minutes=m)).isoformat() + "Z")
        for m in range(0, 23 * 60, 20)
    ]
    ingest_batch(ctx, op, batch)
    everything = ids(list_events(ctx, op, f"{day}000000", f"{day}235959", None, None))
    tiled: list[str] = []
    for hour in range(24):
        page = list_events(ctx, op, f"{day}{hour:02d}0000", f"{day}{hour:02d}5959", None, None)
        tiled += ids(page)
    assert len(everything) == len(batch)
    wrong = {i: tiled.count(i) for i in everything if tiled.count(i) != 1}
    assert wrong == {}, "event id -> times listed across the 24 hourly windows"
    assert tiled == everything


@pytest.mark.parametrize("forged", [f"{2**63}:1", f"1:{2**63}", f"{-(2**63) - 1}:1", "1:-1"])
def test_a_forged_cursor_out_of_range_is_a_bad_parameter(nyc, forged: str) -> None:
    import base64

    ctx, op = nyc
    cursor = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
    with pytest.raises(BadParameters, match="cursor"):
        list_events(ctx, op, "20260601000000", "20260630235959", None, cursor)
