"""void_event against a real database: every aggregation re-folds exactly, ids stay taken."""

from __future__ import annotations

import pytest

from tests.integration.support import FakeClock, Sql, ev, event_rows, fig, page_rows
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.wire.errors import message, row_of
from voxmeter.entrypoints.wire.listing import list_events
from voxmeter.errors import Conflict, NotFound
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_month


def voided(ctx: Context, op: Operation, event_id: str) -> bool:
    return void_event(ctx, op, event_id)[1]


def test_void_sum_and_round_up(ctx: Context, op: Operation, clock: FakeClock) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("s1", "rsync", "2026-05-01T00:00:00Z", "1.5"),
            ev("s2", "rsync", "2026-05-02T00:00:00Z", "2"),
            ev("s3", "rsync", "2026-05-03T00:00:00Z", "3.25"),
            ev("m1", "ivr_minutes", "2026-05-01T00:00:00Z", "0.1"),
            ev("m2", "ivr_minutes", "2026-05-01T00:00:00Z", "2.01"),
        ],
    )
    assert fig(ctx, op, "rsync", "2026-05") == "6.75"
    assert fig(ctx, op, "ivr_minutes", "2026-05") == "4"
    clock.advance(seconds=7)
    event, changed = void_event(ctx, op, "s2")
    assert changed is True
    assert (event.id, event.product, event.quantity, event.voided) == (
        "s2",
        "rsync",
        2_000_000,
        clock.now,
    )
    assert fig(ctx, op, "rsync", "2026-05") == "4.75"
    assert voided(ctx, op, "m1") is True
    assert fig(ctx, op, "ivr_minutes", "2026-05") == "3"  # 2.01 still bills 3
    assert voided(ctx, op, "m2") is True
    assert fig(ctx, op, "ivr_minutes", "2026-05") == "0"
    assert voided(ctx, op, "s1") is True
    assert voided(ctx, op, "s3") is True
    assert fig(ctx, op, "rsync", "2026-05") == "0"


def test_void_count(ctx: Context, op: Operation) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("c1", "interactions", "2026-05-01T00:00:00Z", 5),
            ev("c2", "interactions", "2026-05-01T00:00:00Z"),
            ev("c3", "interactions", "2026-05-01T00:00:00Z"),
        ],
    )
    assert fig(ctx, op, "interactions", "2026-05") == "7"
    assert voided(ctx, op, "c1") is True
    assert fig(ctx, op, "interactions", "2026-05") == "2"
    assert voided(ctx, op, "c3") is True
    assert fig(ctx, op, "interactions", "2026-05") == "1"


def test_void_max_refolds_peak_and_last_level_and_carry_follows(
    make_ctx, op: Operation, clock: FakeClock
) -> None:
    ctx = make_ctx(grace_days=90)  # keep April..July open
    clock.set("2026-04-10T12:00:00Z")
    ingest_batch(ctx, op, [ev("apr", "agent_script", "2026-04-10T00:00:00Z", "2")])
    clock.set("2026-07-10T00:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("may-3", "agent_script", "2026-05-03T00:00:00Z", "5"),
            ev("may-25", "agent_script", "2026-05-25T00:00:00Z", "8"),
            ev("may-20", "agent_script", "2026-05-20T00:00:00Z", "12"),
        ],
    )

    def months() -> list[str]:
        return [
            fig(ctx, op, "agent_script", m) for m in ("2026-04", "2026-05", "2026-06", "2026-07")
        ]

    assert months() == ["2", "12", "8", "8"]
    assert voided(ctx, op, "may-20") is True  # the peak
    assert months() == ["2", "8", "8", "8"]
    assert voided(ctx, op, "may-25") is True  # the last level: 5 carries now
    assert months() == ["2", "5", "5", "5"]
    assert voided(ctx, op, "may-3") is True  # May empty: April's 2 carries through
    assert months() == ["2", "2", "2", "2"]
    assert voided(ctx, op, "apr") is True
    assert months() == ["0", "0", "0", "0"]


def test_void_max_of_an_earlier_month_changes_the_carry_into_later_months(
    make_ctx, op: Operation, clock: FakeClock
) -> None:
    ctx = make_ctx(grace_days=90)
    clock.set("2026-06-15T00:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("a1", "chat_licenses", "2026-04-05T00:00:00Z", "4"),
            ev("a2", "chat_licenses", "2026-04-25T00:00:00Z", "9"),
            ev("j1", "chat_licenses", "2026-06-10T00:00:00Z", "1"),
        ],
    )
    assert [fig(ctx, op, "chat_licenses", m) for m in ("2026-04", "2026-05", "2026-06")] == [
        "9",
        "9",
        "9",
    ]
    assert voided(ctx, op, "a2") is True
    assert [fig(ctx, op, "chat_licenses", m) for m in ("2026-04", "2026-05", "2026-06")] == [
        "4",
        "4",
        "4",
    ]
    assert voided(ctx, op, "j1") is True
    assert fig(ctx, op, "chat_licenses", "2026-06") == "4"


def test_void_unique_drops_a_subject_only_with_its_last_event(
    make_ctx, op: Operation, unique_catalog: Catalog
) -> None:
    ctx = make_ctx(catalog=unique_catalog)
    ingest_batch(
        ctx,
        op,
        [
            ev("u1", "active_agents", "2026-05-01T00:00:00Z", subject="alice"),
            ev("u2", "active_agents", "2026-05-02T00:00:00Z", subject="bob"),
            ev("u3", "active_agents", "2026-05-03T00:00:00Z", subject="alice"),
        ],
    )
    assert fig(ctx, op, "active_agents", "2026-05") == "2"
    assert voided(ctx, op, "u1") is True
    assert fig(ctx, op, "active_agents", "2026-05") == "2"  # alice still has u3
    assert voided(ctx, op, "u2") is True
    assert fig(ctx, op, "active_agents", "2026-05") == "1"
    assert voided(ctx, op, "u3") is True
    assert fig(ctx, op, "active_agents", "2026-05") == "0"
    # A subject that comes back after all its events were voided counts again.
    ingest_batch(ctx, op, [ev("u4", "active_agents", "2026-05-04T00:00:00Z", subject="alice")])
    assert fig(ctx, op, "active_agents", "2026-05") == "1"


@pytest.mark.parametrize(
    ("event", "before", "after"),
    [
        (ev("x", "rsync", "2026-05-01T00:00:00Z", "2.5"), "3.5", "1"),
        (ev("x", "ivr_minutes", "2026-05-01T00:00:00Z", "0.2"), "2", "1"),
        (ev("x", "interactions", "2026-05-01T00:00:00Z", 3), "4", "1"),
        (ev("x", "amazon_s3", "2026-05-09T00:00:00Z", "7"), "7", "1"),
    ],
)
def test_voiding_twice_is_idempotent_and_the_id_stays_taken(
    ctx: Context, op: Operation, sql: Sql, event, before: str, after: str
) -> None:
    other = ev("keep", event.product, "2026-05-02T00:00:00Z", "1")
    ingest_batch(ctx, op, [event, other])
    api = event.product
    assert fig(ctx, op, api, "2026-05") == before
    first_time = void_event(ctx, op, "x")
    assert first_time[1] is True
    assert fig(ctx, op, api, "2026-05") == after
    second_time = void_event(ctx, op, "x")
    assert second_time[1] is False
    assert second_time[0].voided == first_time[0].voided
    assert fig(ctx, op, api, "2026-05") == after  # not subtracted twice

    resent = ingest_batch(ctx, op, [event])
    assert (resent.accepted, resent.duplicates) == (0, 1)
    changed = ingest_batch(ctx, op, [ev("x", "rsync", "2026-05-03T00:00:00Z", "99")])
    assert (changed.accepted, changed.duplicates) == (0, 1)
    assert fig(ctx, op, api, "2026-05") == after
    assert event_rows(sql) == 2
    assert sql("SELECT voided IS NOT NULL FROM events WHERE id = 'x'") == [(1,)]

    page = list_events(ctx, op, "20260501000000", "20260531235959", None, None)
    assert {e["id"]: e["voided"] for e in page_rows(page)} == {"x": True, "keep": False}


def test_voiding_an_event_of_a_closed_month_is_a_conflict(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-04-20T00:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("apr-1", "rsync", "2026-04-02T00:00:00Z", "3"),
            ev("apr-2", "agent_script", "2026-04-02T00:00:00Z", "6"),
        ],
    )
    clock.set("2026-05-02T00:00:00Z")
    assert close_month(ctx, op, Month(2026, 4)) == [Month(2026, 4)]
    for event_id in ("apr-1", "apr-2"):
        with pytest.raises(Conflict) as caught:
            void_event(ctx, op, event_id)
        assert row_of(type(caught.value)).status == 409
        assert "2026-04" in message(caught.value)
    assert fig(ctx, op, "rsync", "2026-04") == "3"
    assert fig(ctx, op, "agent_script", "2026-04") == "6"
    assert fig(ctx, op, "agent_script", "2026-05") == "6"
    page = list_events(ctx, op, "20260401000000", "20260430235959", None, None)
    assert [e["voided"] for e in page_rows(page)] == [False, False]


def test_voiding_an_event_of_a_month_closed_by_grace_is_a_conflict(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-04-20T00:00:00Z")
    ingest_batch(ctx, op, [ev("apr-1", "rsync", "2026-04-02T00:00:00Z", "3")])
    clock.set("2026-05-04T00:00:00Z")  # grace of 3 days over at local midnight
    with pytest.raises(Conflict):
        void_event(ctx, op, "apr-1")
    assert fig(ctx, op, "rsync", "2026-04") == "3"


def test_voiding_an_unknown_id_is_not_found(ctx: Context, op: Operation) -> None:
    ingest_batch(ctx, op, [ev("known", "rsync", "2026-05-01T00:00:00Z", "1")])
    with pytest.raises(NotFound) as caught:
        void_event(ctx, op, "unknown")
    assert row_of(type(caught.value)).status == 404
    assert "unknown" in message(caught.value)
    assert fig(ctx, op, "rsync", "2026-05") == "1"
