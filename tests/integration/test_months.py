"""Closing months: explicit close, grace period, close_due_months, retries into closed months."""

from __future__ import annotations

import pytest

from tests.integration.support import (
    FakeClock,
    Sql,
    ev,
    event_rows,
    fig,
    figures,
    month_index,
    page_rows,
)
from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.wire.errors import message
from voxmeter.entrypoints.wire.listing import list_events
from voxmeter.entrypoints.wire.months import resolve_month
from voxmeter.errors import BadParameters, Conflict
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import check_batch, ingest_batch
from voxmeter.service.months import close_due_months, close_month, is_closed_by_grace
from voxmeter.service.tenancy import create_operation

APRIL_EVENTS = [
    ev("apr-sum", "rsync", "2026-04-02T00:00:00Z", "3.5"),
    ev("apr-up", "ivr_minutes", "2026-04-03T00:00:00Z", "0.5"),
    ev("apr-count", "interactions", "2026-04-04T00:00:00Z", 2),
    ev("apr-max-1", "agent_script", "2026-04-05T00:00:00Z", "9"),
    ev("apr-max-2", "agent_script", "2026-04-25T00:00:00Z", "6"),
]


def refused_months(exc: BadParameters) -> list[str]:
    return [p["error"] for p in exc.data]


def test_close_month_freezes_every_figure(
    ctx: Context, op: Operation, clock: FakeClock, sql: Sql
) -> None:
    clock.set("2026-04-26T00:00:00Z")
    ingest_batch(ctx, op, APRIL_EVENTS)
    clock.set("2026-05-02T00:00:00Z")  # April still open: its grace period runs to 4 May
    before = figures(ctx, op, "2026-04")
    assert {k: v for k, v in before.items() if v != "0"} == {
        "rsync": "3.5",
        "ivr_minutes": "1",
        "interactions": "2",
        "agent_script": "9",
    }

    assert close_month(ctx, op, Month(2026, 4)) == [Month(2026, 4)]
    frozen = ctx.storage.frozen_figures(op.id, month_index("2026-04"))
    assert frozen is not None
    assert len(frozen) == len(ctx.catalog)
    assert frozen["rsync"] == 3_500_000
    assert frozen["agent_script"] == 9_000_000
    assert close_month(ctx, op, Month(2026, 4)) == []  # already closed

    # New events for the closed month: refused, naming the month, and the whole batch too.
    rows = event_rows(sql)
    with pytest.raises(BadParameters) as caught:
        ingest_batch(
            ctx,
            op,
            [
                ev("may-ok", "rsync", "2026-05-01T12:00:00Z", "1"),
                ev("apr-late", "rsync", "2026-04-30T23:59:59Z", "100"),
                ev("may-ok-2", "agent_script", "2026-05-01T12:00:00Z", "50"),
            ],
        )
    assert caught.value.data == [{"index": 1, "field": "time", "error": "month 2026-04 is closed"}]
    assert event_rows(sql) == rows
    assert fig(ctx, op, "rsync", "2026-05") == "0"
    assert fig(ctx, op, "agent_script", "2026-05") == "6"  # April's last level, carried

    # Voids refused.
    for event_id in ("apr-sum", "apr-max-1"):
        with pytest.raises(Conflict):
            void_event(ctx, op, event_id)

    # Later activity in May leaves April alone, also once April's grace period is over.
    ingest_batch(ctx, op, [ev("may-max", "agent_script", "2026-05-01T13:00:00Z", "40")])
    assert fig(ctx, op, "agent_script", "2026-05") == "40"
    clock.set("2026-06-20T00:00:00Z")
    assert figures(ctx, op, "2026-04") == before


def test_closing_a_month_closes_every_earlier_month(
    make_ctx, op: Operation, clock: FakeClock
) -> None:
    ctx = make_ctx(grace_days=90)  # no month closes by itself during this test
    clock.set("2026-02-10T00:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("jan", "agent_script", "2026-01-10T00:00:00Z", "3"),
            ev("feb", "rsync", "2026-02-09T00:00:00Z", "1"),
        ],
    )
    clock.set("2026-04-10T00:00:00Z")
    ingest_batch(ctx, op, [ev("mar", "rsync", "2026-03-09T00:00:00Z", "2")])
    for m in ("2026-01", "2026-02", "2026-03"):
        assert not is_closed_by_grace(ctx, op, month_index(m), clock.now)

    newly = close_month(ctx, op, Month(2026, 3))
    assert newly == [Month(2026, 1), Month(2026, 2), Month(2026, 3)]
    for m, level, total in (("2026-01", 3, 0), ("2026-02", 3, 1), ("2026-03", 3, 2)):
        frozen = ctx.storage.frozen_figures(op.id, month_index(m))
        assert frozen is not None, m
        assert (frozen["agent_script"], frozen["rsync"]) == (level * 10**6, total * 10**6), m

    for n, time in enumerate(("2026-01-20T00:00:00Z", "2026-02-20T00:00:00Z")):
        with pytest.raises(BadParameters) as caught:
            ingest_batch(ctx, op, [ev(f"late-{n}", "rsync", time, "1")])
        assert refused_months(caught.value) == [f"month {time[:7]} is closed"]
    for event_id in ("jan", "feb", "mar"):
        with pytest.raises(Conflict):
            void_event(ctx, op, event_id)
    assert ingest_batch(ctx, op, [ev("apr", "rsync", "2026-04-01T00:00:00Z", "1")]).accepted == 1
    # A closing earlier month than one already closed is a no-op.
    assert close_month(ctx, op, Month(2026, 2)) == []


def test_closing_a_month_closes_earlier_months_that_hold_no_events(
    make_ctx, op: Operation, clock: FakeClock
) -> None:
    ctx = make_ctx(grace_days=90)
    clock.set("2026-04-10T00:00:00Z")
    ingest_batch(ctx, op, [ev("mar", "rsync", "2026-03-09T00:00:00Z", "2")])
    assert not is_closed_by_grace(ctx, op, month_index("2026-02"), clock.now)
    close_month(ctx, op, Month(2026, 3))
    # February is earlier than the closed March: it must be closed too, even with no events.
    with pytest.raises(BadParameters) as caught:
        ingest_batch(ctx, op, [ev("feb-late", "rsync", "2026-02-15T00:00:00Z", "5")])
    assert refused_months(caught.value) == ["month 2026-02 is closed"]
    assert fig(ctx, op, "rsync", "2026-02") == "0"


def test_closing_the_current_or_a_future_month_is_refused(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    ingest_batch(ctx, op, [ev("may", "rsync", "2026-05-01T00:00:00Z", "1")])
    for month in (Month(2026, 5), Month(2026, 6), Month(2027, 1)):
        with pytest.raises(BadParameters) as caught:
            close_month(ctx, op, month)
        assert str(month) in message(caught.value)
    assert ctx.storage.frozen_figures(op.id, month_index("2026-05")) is None
    assert ingest_batch(ctx, op, [ev("may-2", "rsync", "2026-05-02T00:00:00Z", "1")]).accepted == 1

    # Local time decides what "current" means: 31 May 22:00 in New York is still May there.
    nyc = create_operation(ctx, "nyc", "9901", "America/New_York")
    clock.set("2026-06-01T02:00:00Z")
    with pytest.raises(BadParameters):
        close_month(ctx, nyc, Month(2026, 5))
    assert close_month(ctx, op, Month(2026, 5)) == [Month(2026, 5)]
    clock.set("2026-06-01T04:00:00Z")
    assert close_month(ctx, nyc, Month(2026, 5)) == [Month(2026, 5)]


@pytest.mark.parametrize(
    ("timezone", "grace", "closes_at"),
    [
        ("UTC", 3, "2026-05-04T00:00:00Z"),
        ("UTC", 0, "2026-05-01T00:00:00Z"),
        ("UTC", 10, "2026-05-11T00:00:00Z"),
        ("America/New_York", 3, "2026-05-04T04:00:00Z"),
        ("Asia/Kathmandu", 3, "2026-05-03T18:15:00Z"),
    ],
)
def test_grace_period_ends_at_local_midnight(
    make_ctx, clock: FakeClock, timezone: str, grace: int, closes_at: str
) -> None:
    ctx = make_ctx(grace_days=grace)
    op = create_operation(ctx, "graceful", "9901", timezone)
    clock.set("2026-04-20T00:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("a1", "rsync", "2026-04-15T00:00:00Z", "1"),
            ev("a2", "rsync", "2026-04-16T00:00:00Z", "2"),
            ev("a3", "rsync", "2026-04-17T00:00:00Z", "4"),
        ],
    )
    april = month_index("2026-04")

    clock.set(closes_at)
    clock.advance(microseconds=-1)
    assert not is_closed_by_grace(ctx, op, april, clock.now)
    assert (
        ingest_batch(ctx, op, [ev("last-call", "rsync", "2026-04-20T00:00:00Z", "8")]).accepted == 1
    )
    assert void_event(ctx, op, "a1")[1] is True
    assert fig(ctx, op, "rsync", "2026-04") == "14"

    clock.advance(microseconds=1)
    assert is_closed_by_grace(ctx, op, april, clock.now)
    with pytest.raises(BadParameters) as caught:
        ingest_batch(ctx, op, [ev("too-late", "rsync", "2026-04-20T00:00:00Z", "16")])
    assert refused_months(caught.value) == ["month 2026-04 is closed"]
    with pytest.raises(Conflict):
        void_event(ctx, op, "a2")
    assert fig(ctx, op, "rsync", "2026-04") == "14"
    # A retry of a stored April event is still just a duplicate.
    retry = ingest_batch(ctx, op, [ev("a3", "rsync", "2026-04-17T00:00:00Z", "4")])
    assert (retry.accepted, retry.duplicates) == (0, 1)


def test_close_due_months_freezes_what_the_grace_period_closed(
    ctx: Context, clock: FakeClock
) -> None:
    acme = create_operation(ctx, "acme", "9901", "UTC")
    nyc = create_operation(ctx, "nyc", "0042", "America/New_York")
    create_operation(ctx, "idle", "9901", "UTC")
    clock.set("2026-03-20T00:00:00Z")
    for op in (acme, nyc):
        ingest_batch(
            ctx,
            op,
            [
                ev("m", "pbx_licenses", "2026-03-10T00:00:00Z", "4"),
                ev("m2", "rsync", "2026-03-11T00:00:00Z", "1.5"),
            ],
        )
    clock.set("2026-04-20T00:00:00Z")
    for op in (acme, nyc):
        ingest_batch(ctx, op, [ev("a", "rsync", "2026-04-10T00:00:00Z", "2.5")])
    before = {
        (op.name, m): figures(ctx, op, m) for op in (acme, nyc) for m in ("2026-03", "2026-04")
    }

    # 4 May 02:00 UTC: UTC's April is past its grace; New York's (3 May 22:00) is not.
    clock.set("2026-05-04T02:00:00Z")
    done = close_due_months(ctx)
    assert done == {
        "9901/acme": [Month(2026, 3), Month(2026, 4)],
        "0042/nyc": [Month(2026, 3)],
    }
    assert ctx.storage.frozen_figures(nyc.id, month_index("2026-04")) is None
    assert close_due_months(ctx) == {}

    clock.set("2026-05-04T04:00:00Z")
    assert close_due_months(ctx) == {"0042/nyc": [Month(2026, 4)]}
    assert close_due_months(ctx) == {}
    for op in (acme, nyc):
        for m in ("2026-03", "2026-04"):
            frozen = ctx.storage.frozen_figures(op.id, month_index(m))
            assert frozen is not None
            assert frozen["pbx_licenses"] == 4_000_000
            assert figures(ctx, op, m) == before[(op.name, m)]
        assert fig(ctx, op, "rsync", "2026-03") == "1.5"
        assert fig(ctx, op, "rsync", "2026-04") == "2.5"
        assert fig(ctx, op, "pbx_licenses", "2026-05") == "4"


@pytest.mark.parametrize("how", ["explicit", "grace"])
def test_a_retry_into_a_closed_month_is_a_duplicate_not_an_error(
    ctx: Context, op: Operation, clock: FakeClock, sql: Sql, how: str
) -> None:
    clock.set("2026-04-20T00:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("a1", "rsync", "2026-04-02T00:00:00Z", "3"),
            ev("a2", "interactions", "2026-04-02T00:00:00Z"),
        ],
    )
    if how == "explicit":
        clock.set("2026-05-01T01:00:00Z")
        close_month(ctx, op, Month(2026, 4))
    else:
        clock.set("2026-05-10T00:00:00Z")
    rows = event_rows(sql)

    same = ingest_batch(ctx, op, [ev("a1", "rsync", "2026-04-02T00:00:00Z", "3")])
    assert (same.accepted, same.duplicates) == (0, 1)
    mixed = ingest_batch(
        ctx,
        op,
        [
            ev("a1", "rsync", "2026-04-02T00:00:00Z", "3"),
            ev("m1", "rsync", "2026-05-01T00:30:00Z", "1"),
            ev("a2", "interactions", "2026-04-29T00:00:00Z", 9),  # other fields: still a dup
            ev("a1", "rsync", "2026-05-01T00:30:00Z", "1000"),  # id taken, whatever the month
        ],
    )
    assert (mixed.accepted, mixed.duplicates) == (1, 3)
    assert event_rows(sql) == rows + 1
    assert fig(ctx, op, "rsync", "2026-04") == "3"
    assert fig(ctx, op, "interactions", "2026-04") == "1"
    assert fig(ctx, op, "rsync", "2026-05") == "1"

    with pytest.raises(BadParameters) as caught:
        ingest_batch(
            ctx,
            op,
            [
                ev("a1", "rsync", "2026-04-02T00:00:00Z", "3"),
                ev("a9", "rsync", "2026-04-03T00:00:00Z", "3"),
                ev("m2", "rsync", "2026-05-01T00:30:00Z", "1"),
            ],
        )
    assert caught.value.data == [{"index": 1, "field": "time", "error": "month 2026-04 is closed"}]
    assert event_rows(sql) == rows + 1
    page = list_events(ctx, op, "20260401000000", "20260501235959", None, None)
    assert [e["id"] for e in page_rows(page)] == ["a1", "a2", "m1"]


def test_resolve_month_accepts_past_and_current_and_refuses_future(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    assert resolve_month(ctx, op, None) is None
    assert resolve_month(ctx, op, "2026-05") == month_index("2026-05")
    assert resolve_month(ctx, op, "2019-01") == month_index("2019-01")
    for text in ("2026-06", "2027-01"):
        with pytest.raises(BadParameters) as caught:
            resolve_month(ctx, op, text)
        assert (
            message(caught.value) == f"SOME PARAMETERS ARE REQUIRED: month {text} is in the future"
        )
    for text in ("2026-13", "2026-5", "202605", "May 2026", ""):
        with pytest.raises(BadParameters):
            resolve_month(ctx, op, text)
    # "Current" is local: at 1 June 02:00 UTC it is still May in New York.
    nyc = create_operation(ctx, "nyc", "9901", "America/New_York")
    clock.set("2026-06-01T02:00:00Z")
    assert resolve_month(ctx, op, "2026-06") == month_index("2026-06")
    with pytest.raises(BadParameters):
        resolve_month(ctx, nyc, "2026-06")


def test_a_later_copy_of_a_new_id_in_a_closed_month_is_refused_like_check_batch(
    ctx: Context, op: Operation, clock: FakeClock, sql: Sql
) -> None:
    """Every copy must be valid: the first copy of `a` is in open May, its copy in closed March."""
    clock.set("2026-05-15T12:00:00Z")
    rows = event_rows(sql)
    batch = [
        ev("a", "rsync", "2026-05-02T00:00:00Z", "1"),
        ev("a", "rsync", "2026-03-02T00:00:00Z", "1"),
    ]
    assert [p.index for p in check_batch(ctx, op, batch)] == [1]  # type: ignore[arg-type]
    with pytest.raises(BadParameters) as caught:
        ingest_batch(ctx, op, batch)
    assert caught.value.data == [{"index": 1, "field": "time", "error": "month 2026-03 is closed"}]
    # The refusal does not depend on unrelated events of the batch either.
    with pytest.raises(BadParameters) as both:
        ingest_batch(
            ctx,
            op,
            [
                ev("b", "rsync", "2026-03-02T00:00:00Z", "1"),
                ev("c", "rsync", "2026-05-02T00:00:00Z", "1"),
                ev("c", "rsync", "2026-04-05T00:00:00Z", "1"),
            ],
        )
    assert [item["index"] for item in both.value.data] == [0, 2]  # type: ignore[index]
    assert event_rows(sql) == rows
