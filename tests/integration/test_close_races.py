"""Closing months while batches commit, on the real databases (both backends).

A batch that reports a level in a month before the operation's first metered month moves the
start of everything a close must freeze. Each attempt runs a close and such a batch on two
threads, in one of three orders: the batch commits after the close has started but before its
transaction opens ("between"), the batch starts once the close's transaction has the operation
to itself ("during"), or both just run ("free"). Whatever the order, the frozen figures must be
exactly those of the events that committed, and a batch answered with success must be in them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from tests.integration.interleaving import Interleaving, Worker
from tests.integration.support import FakeClock, ev, month_index
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.quantities import MICRO
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.ingest import IngestResult, ingest_batch
from voxmeter.service.months import close_due_months, close_month
from voxmeter.service.ports import Database
from voxmeter.service.tenancy import create_operation

ATTEMPTS = 24
BATCH = 2_000
LEVEL = "chat_licenses"  # a `max` product: its level carries into later months
ORDERS = ("between", "during", "free")
CLOSED = Month(2026, 6)
NOW = "2026-07-10T12:00:00Z"  # June is over, and its 3-day grace period too


def _level_month(attempt: int) -> Month:
    """2026-04 back to 2025-10: always before the operation's first metered month (May)."""
    return Month.from_index(month_index("2026-04") - attempt % 7)


def _batch(attempt: int, month: Month) -> list:
    day = f"{month}-15T"
    events = [ev(f"a{attempt}-{i}", "rsync", f"{day}08:00:00Z", "1") for i in range(BATCH)]
    events.insert(BATCH // 2, ev(f"a{attempt}-level", LEVEL, f"{day}09:00:00Z", 10 + attempt))
    return events


def _close(ctx: Context, op: Operation, how: str) -> None:
    if how == "explicit":
        close_month(ctx, op, CLOSED)
    else:
        assert f"9901/{op.name}" in close_due_months(ctx)


def _race(
    racing: Interleaving,
    order: str,
    close: Callable[[], None],
    batch: Callable[[], IngestResult],
) -> IngestResult | BadParameters:
    """Run `close()` and `batch()` in the given order; the batch's result or refusal."""

    def attempt_batch() -> IngestResult | BadParameters:
        try:
            return batch()
        except BadParameters as exc:
            return exc

    worker = Worker(attempt_batch)
    if order == "between":
        racing.before_next_write(lambda: worker.start().join())
        close()
    elif order == "during":

        def start_batch() -> None:
            worker.start()
            time.sleep(0.01)  # let it reach the operation's lock while the close holds it

        racing.after_next_exclusive(start_batch)
        close()
    else:
        gate = threading.Barrier(2)

        def together() -> IngestResult | BadParameters:
            gate.wait()
            return attempt_batch()

        worker = Worker(together).start()
        gate.wait()
        close()
    racing.disarm()
    return worker.join()


@pytest.mark.parametrize("how", ["explicit", "grace"])
def test_a_close_racing_a_batch_freezes_exactly_what_committed(
    storage: Database, catalog: Catalog, how: str
) -> None:
    racing = Interleaving(storage)
    clock = FakeClock(NOW)
    # The batch comes through a process with a long grace period (as in a server started with
    # --grace-days 400), so its earlier months are still open to it.
    ingesting = Context(storage=racing, catalog=catalog, grace_days=400, clock=clock)  # type: ignore[arg-type]
    closing = (
        ingesting
        if how == "explicit"
        else Context(
            storage=racing,
            catalog=catalog,
            grace_days=3,
            clock=clock,  # type: ignore[arg-type]
        )
    )
    outcomes: dict[str, int] = {}
    for attempt in range(ATTEMPTS):
        order = ORDERS[attempt % len(ORDERS)]
        op = create_operation(ingesting, f"race{attempt}", "9901", "UTC")
        ingest_batch(ingesting, op, [ev(f"a{attempt}-seed", "rsync", "2026-05-20T10:00:00Z", "1")])
        month = _level_month(attempt)
        events = _batch(attempt, month)
        outcome = _race(
            racing,
            order,
            partial(_close, closing, op, how),
            partial(ingest_batch, ingesting, op, events),
        )
        accepted = isinstance(outcome, IngestResult)
        key = f"{order}/{'accepted' if accepted else 'refused'}"
        outcomes[key] = outcomes.get(key, 0) + 1
        where = f"attempt {attempt} ({order}, level in {month})"
        if order == "between":
            assert accepted, f"{where}: the batch ran before the close's transaction opened"
        if order == "during":
            assert not accepted, f"{where}: the batch ran after the months were closed"

        level = (10 + attempt) * MICRO if accepted else 0
        first = month.index if accepted else month_index("2026-05")
        for index in reversed(range(month.index, CLOSED.index + 1)):  # June first
            frozen = storage.frozen_figures(op.id, index)
            label = f"{where}: {Month.from_index(index)}"
            if index < first:
                assert frozen is None, f"{label} has no events and must stay unfrozen"
                continue
            assert frozen is not None, f"{label} must be frozen"
            assert frozen.get(LEVEL, 0) == level, f"{label}: {LEVEL} frozen {frozen.get(LEVEL)}"
            rsync = {month.index: BATCH if accepted else 0, month_index("2026-05"): 1}
            assert frozen.get("rsync", 0) == rsync.get(index, 0) * MICRO, label
        window = calendar("UTC").window(month.index)
        stored = list(storage.events(op.id, *window, None, None, BATCH + 10))
        assert len(stored) == (BATCH + 1 if accepted else 0), where
    # Every order ran as often ("free" may go either way).
    assert outcomes.get("between/accepted") == outcomes.get("during/refused") == ATTEMPTS // 3
    assert sum(n for key, n in outcomes.items() if key.startswith("free/")) == ATTEMPTS // 3
