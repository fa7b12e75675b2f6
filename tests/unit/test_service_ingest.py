"""ingest_batch on the in-memory storage: dedupe for ever, atomic batches, closed months."""

from __future__ import annotations

import pytest

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, ev, fig
from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_month
from voxmeter.service.tenancy import create_operation

Ctx = Context[MemoryDatabase]


def test_an_id_counts_once_for_ever_and_the_first_copy_wins(ctx: Ctx, op: Operation) -> None:
    first = ingest_batch(
        ctx,
        op,
        [
            ev("a", "rsync", "2026-05-02T00:00:00Z", "1.5"),
            ev("a", "rsync", "2026-05-03T00:00:00Z", "9"),  # a copy in the same batch
            ev("b", "rsync", "2026-05-03T00:00:00Z", "2"),
        ],
    )
    again = ingest_batch(ctx, op, [ev("a", "tts_chars", "2026-05-04T00:00:00Z", "100")])
    assert (first.accepted, first.duplicates) == (2, 1)
    assert [e.id for e in first.new_events] == ["a", "b"]
    assert (again.accepted, again.duplicates) == (0, 1)
    assert fig(ctx, op, "rsync", "2026-05") == "3.5"
    assert fig(ctx, op, "tts_chars", "2026-05") == "0"


def test_ids_are_per_operation(ctx: Ctx, op: Operation) -> None:
    other = create_operation(ctx, "globex", "9901", "UTC")
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "1")])
    result = ingest_batch(ctx, other, [ev("a", "rsync", "2026-05-02T00:00:00Z", "4")])
    assert (result.accepted, result.duplicates) == (1, 0)
    assert (fig(ctx, op, "rsync", "2026-05"), fig(ctx, other, "rsync", "2026-05")) == ("1", "4")


def test_a_batch_with_one_bad_event_stores_nothing(ctx: Ctx, op: Operation) -> None:
    with pytest.raises(BadParameters):
        ingest_batch(
            ctx,
            op,
            [
                ev("good", "rsync", "2026-05-02T00:00:00Z", "1"),
                ev("bad", "no_such_product", "2026-05-02T00:00:00Z", "1"),
            ],
        )
    assert fig(ctx, op, "rsync", "2026-05") == "0"
    assert ingest_batch(ctx, op, [ev("good", "rsync", "2026-05-02T00:00:00Z", "1")]).accepted == 1


def test_a_failure_inside_the_transaction_rolls_the_whole_batch_back(
    ctx: Ctx, op: Operation, memory: MemoryDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests import fakes

    def broken(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(fakes._Transaction, "save_meters", broken)
    with pytest.raises(RuntimeError):
        ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "1")])
    monkeypatch.undo()
    result = ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "1")])
    assert (result.accepted, result.duplicates) == (1, 0)  # the id was not kept either
    assert fig(ctx, op, "rsync", "2026-05") == "1"


def test_new_events_for_a_closed_month_are_refused_but_copies_are_duplicates(
    ctx: Ctx, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-05-02T00:00:00Z")  # April still in its grace period
    ingest_batch(ctx, op, [ev("old", "rsync", "2026-04-10T00:00:00Z", "2")])
    close_month(ctx, op, Month(2026, 4))
    with pytest.raises(BadParameters) as refused:
        ingest_batch(ctx, op, [ev("late", "rsync", "2026-04-11T00:00:00Z", "1")])
    assert refused.value.data == [{"index": 0, "field": "time", "error": "month 2026-04 is closed"}]
    copy = ingest_batch(ctx, op, [ev("old", "rsync", "2026-04-10T00:00:00Z", "2")])
    assert (copy.accepted, copy.duplicates) == (0, 1)
    assert fig(ctx, op, "rsync", "2026-04") == "2"


def test_peak_levels_and_unique_subjects(unique_ctx: Ctx, op: Operation) -> None:
    ctx = unique_ctx
    ingest_batch(
        ctx,
        op,
        [
            ev("l1", "agent_script", "2026-05-02T00:00:00Z", "7"),
            ev("l2", "agent_script", "2026-05-03T00:00:00Z", "4"),
        ],
    )
    ingest_batch(
        ctx,
        op,
        [
            ev("u1", "agents_seen", "2026-05-02T00:00:00Z", subject="ana"),
            ev("u2", "agents_seen", "2026-05-03T00:00:00Z", subject="ana"),
            ev("u3", "agents_seen", "2026-05-03T00:00:00Z", subject="bo"),
        ],
    )
    ingest_batch(ctx, op, [ev("u4", "agents_seen", "2026-05-04T00:00:00Z", subject="bo")])
    assert fig(ctx, op, "agent_script", "2026-05") == "7"  # the month's peak
    assert fig(ctx, op, "agents_seen", "2026-05") == "2"  # ana and bo
