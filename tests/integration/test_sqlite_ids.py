"""The SQLite id tables: dedupe stays exact through level merges and 64-bit key collisions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.support import FakeClock, ev, fig, query
from voxmeter.adapters.sqlite import SqliteStorage
from voxmeter.adapters.sqlite import events as sqlite_events
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import create_operation

DAY = "2026-05-02T00:00:00Z"


@pytest.fixture
def small_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Levels of 3 and 7 keys, so a few batches merge through every level."""
    monkeypatch.setattr(sqlite_events, "_LEVEL_SIZES", {0: 3, 1: 7})


@pytest.fixture
def ctx(tmp_path: Path, clock: FakeClock) -> Iterator[Context]:
    storage = SqliteStorage(str(tmp_path / "ids.db"))
    storage.migrate()
    yield Context(storage=storage, catalog=Catalog.load(), grace_days=3, clock=clock)
    storage.close()


@pytest.fixture
def op(ctx: Context) -> Operation:
    return create_operation(ctx, "acme", "9901", "UTC")


def level_sizes(ctx: Context) -> list[int]:
    path = Path(ctx.storage._path)  # type: ignore[attr-defined]
    return [query(path, f"SELECT count(*) FROM event_keys_{level}")[0][0] for level in (0, 1, 2)]


@pytest.mark.usefixtures("small_levels")
def test_ids_stay_taken_through_every_merge(ctx: Context, op: Operation) -> None:
    ids = [f"{n * 7919 % 1000:03d}" for n in range(40)]  # out of order: the keyed path
    for start in range(0, 40, 4):
        batch = [ev(i, "rsync", DAY, "1") for i in ids[start : start + 4]]
        assert ingest_batch(ctx, op, batch).accepted == 4
    sizes = level_sizes(ctx)  # the first batch sorted after nothing: appended to event_ids
    assert (sizes[1] > 0, sizes[2] > 0, sum(sizes)) == (True, True, 36)
    again = ingest_batch(ctx, op, [ev(i, "rsync", DAY, "5") for i in ids])
    assert (again.accepted, again.duplicates) == (0, 40)
    assert fig(ctx, op, "rsync", "2026-05") == "40"
    for event_id in ids[::9]:
        assert void_event(ctx, op, event_id)[1] is True
    assert fig(ctx, op, "rsync", "2026-05") == "35"


@pytest.mark.usefixtures("small_levels")
def test_key_collisions_are_told_apart_by_the_stored_id(
    ctx: Context, op: Operation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_events, "_id_key", lambda operation_id, event_id: len(event_id))
    ingest_batch(ctx, op, [ev("zz", "rsync", DAY, "1")])
    first = ingest_batch(ctx, op, [ev(i, "rsync", DAY, "1") for i in ["b1", "a1", "c1", "a2"]])
    assert first.accepted == 4, "same key, different ids: all new"
    mixed = ingest_batch(ctx, op, [ev(i, "rsync", DAY, "1") for i in ["a1", "d1", "c1", "e1"]])
    assert (mixed.accepted, [e.id for e in mixed.new_events]) == (2, ["d1", "e1"])
    assert void_event(ctx, op, "c1")[0].id == "c1"
    assert fig(ctx, op, "rsync", "2026-05") == "6"


def test_time_ordered_ids_are_appended_then_random_ones_checked(
    ctx: Context, op: Operation
) -> None:
    ingest_batch(ctx, op, [ev(f"evt-{n:03d}", "rsync", DAY, "1") for n in range(10)])
    ingest_batch(ctx, op, [ev(f"evt-{n:03d}", "rsync", DAY, "1") for n in range(10, 20)])
    assert level_sizes(ctx) == [0, 0, 0]
    late = ingest_batch(ctx, op, [ev(f"evt-{n:03d}", "rsync", DAY, "1") for n in range(5, 25)])
    assert (late.accepted, late.duplicates) == (5, 15)
    assert level_sizes(ctx) == [5, 0, 0]
    assert fig(ctx, op, "rsync", "2026-05") == "25"


def test_operations_do_not_share_ids(ctx: Context, op: Operation) -> None:
    other = create_operation(ctx, "globex", "9901", "UTC")
    for owner in (op, other, op):
        result = ingest_batch(ctx, owner, [ev(i, "rsync", DAY, "1") for i in ["b", "a", "c"]])
        assert result.accepted == (3 if owner is not op or result.duplicates == 0 else 0)
    assert fig(ctx, op, "rsync", "2026-05") == "3"
    assert fig(ctx, other, "rsync", "2026-05") == "3"


def test_a_failed_batch_leaves_no_ids_behind(ctx: Context, op: Operation) -> None:
    with pytest.raises(RuntimeError):
        _insert_then_fail(ctx.storage, op, ["q", "p"])
    assert ingest_batch(ctx, op, [ev(i, "rsync", DAY, "1") for i in ["q", "p"]]).accepted == 2


def _insert_then_fail(storage: SqliteStorage, op: Operation, ids: list[str]) -> None:
    with storage.write() as tx:
        events = [UsageEvent(i, "rsync", 1_777_680_000_000_000, 0, 1, None) for i in ids]
        assert tx.insert_new(op.id, events, 0) == events
        raise RuntimeError("after the insert, before the commit")
