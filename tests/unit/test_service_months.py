"""Closing months on the in-memory storage: frozen figures, earlier months, the grace period."""

from __future__ import annotations

import pytest

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, ev, fig, month_index
from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_due_months, close_month

Ctx = Context[MemoryDatabase]


def test_closing_freezes_figures_and_closes_every_earlier_month(
    ctx: Ctx, op: Operation, memory: MemoryDatabase, clock: FakeClock
) -> None:
    clock.set("2026-02-20T00:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("feb", "rsync", "2026-02-10T00:00:00Z", "1"),
            ev("lvl", "agent_script", "2026-02-11T00:00:00Z", "6"),
        ],
    )
    clock.set("2026-05-01T12:00:00Z")  # April still in its grace period
    ingest_batch(ctx, op, [ev("apr", "rsync", "2026-04-10T00:00:00Z", "2.5")])
    closed = close_month(ctx, op, Month(2026, 4))
    assert closed == [Month(2026, 2), Month(2026, 3), Month(2026, 4)]
    frozen = memory.frozen_figures(op.id, month_index("2026-04"))
    assert frozen is not None
    assert frozen["agent_script"] == 6_000_000
    assert fig(ctx, op, "rsync", "2026-04") == "2.5"
    assert fig(ctx, op, "agent_script", "2026-03") == "6"  # the level carried through March
    assert close_month(ctx, op, Month(2026, 4)) == []  # already closed
    assert memory.frozen_figures(op.id, month_index("2026-05")) is None


def test_the_current_month_cannot_be_closed(ctx: Ctx, op: Operation) -> None:
    with pytest.raises(BadParameters):
        close_month(ctx, op, Month(2026, 5))


def test_close_due_months_freezes_what_the_grace_period_closed(
    ctx: Ctx, op: Operation, memory: MemoryDatabase, clock: FakeClock
) -> None:
    clock.set("2026-05-03T12:00:00Z")  # April's grace period runs to 4 May, midnight UTC
    ingest_batch(ctx, op, [ev("apr", "rsync", "2026-04-10T00:00:00Z", "2")])
    assert close_due_months(ctx) == {}
    clock.set("2026-05-04T00:00:00Z")
    assert close_due_months(ctx) == {"9901/acme": [Month(2026, 4)]}
    assert memory.frozen_figures(op.id, month_index("2026-04")) is not None
    assert close_due_months(ctx) == {}
