"""Voiding and listing on the in-memory storage: re-folded figures, ids kept, cursor order."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, ev, fig
from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import Conflict, NotFound
from voxmeter.service.context import Context
from voxmeter.service.events import list_events, void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_month

Ctx = Context[MemoryDatabase]


def test_voiding_a_sum_takes_the_event_out_once_and_keeps_its_id(
    ctx: Ctx, op: Operation, clock: FakeClock
) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("s1", "rsync", "2026-05-01T00:00:00Z", "1.5"),
            ev("s2", "rsync", "2026-05-02T00:00:00Z", "2"),
        ],
    )
    clock.advance(seconds=5)
    event, changed = void_event(ctx, op, "s2")
    assert (changed, event.id, event.voided) == (True, "s2", clock.now)
    assert fig(ctx, op, "rsync", "2026-05") == "1.5"
    assert void_event(ctx, op, "s2")[1] is False  # already void: nothing changes
    assert fig(ctx, op, "rsync", "2026-05") == "1.5"
    again = ingest_batch(ctx, op, [ev("s2", "rsync", "2026-05-02T00:00:00Z", "2")])
    assert (again.accepted, again.duplicates) == (0, 1)


def test_voiding_the_peak_refolds_the_level_from_the_remaining_events(
    ctx: Ctx, op: Operation
) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("l1", "agent_script", "2026-05-01T00:00:00Z", "3"),
            ev("l2", "agent_script", "2026-05-02T00:00:00Z", "9"),
            ev("l3", "agent_script", "2026-05-03T00:00:00Z", "5"),
        ],
    )
    assert fig(ctx, op, "agent_script", "2026-05") == "9"
    void_event(ctx, op, "l2")
    assert fig(ctx, op, "agent_script", "2026-05") == "5"


def test_unknown_ids_and_closed_months_are_refused(
    ctx: Ctx, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-05-02T00:00:00Z")
    ingest_batch(ctx, op, [ev("april", "rsync", "2026-04-20T00:00:00Z", "1")])
    with pytest.raises(NotFound):
        void_event(ctx, op, "nope")
    close_month(ctx, op, Month(2026, 4))
    with pytest.raises(Conflict):
        void_event(ctx, op, "april")
    assert fig(ctx, op, "rsync", "2026-04") == "1"


def test_listing_pages_in_time_then_arrival_order_with_voids_shown(ctx: Ctx, op: Operation) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("late", "rsync", "2026-05-03T00:00:00Z", "1"),
            ev("same-1", "rsync", "2026-05-02T00:00:00Z", "1"),
            ev("same-2", "interactions", "2026-05-02T00:00:00Z"),
            ev("early", "rsync", "2026-05-01T00:00:00Z", "1"),
            ev("outside", "rsync", "2026-05-12T00:00:00Z", "1"),
        ],
    )
    void_event(ctx, op, "same-1")
    seen: list[tuple[str, object]] = []
    start, end = datetime(2026, 5, 1), datetime(2026, 5, 10)
    after = None
    while True:
        page = list_events(ctx, op, start, end, None, after, limit=2)
        seen += [(e.id, e.voided is not None) for e in page.events]
        after = page.next_after
        if after is None:
            break
    assert seen == [("early", False), ("same-1", True), ("same-2", False), ("late", False)]
    only = list_events(ctx, op, start, end, "interactions", None)
    assert [e.id for e in only.events] == ["same-2"]
