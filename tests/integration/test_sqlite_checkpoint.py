"""The embedded store copies its write-ahead log into the database on a thread of its own, so
no commit pays for a checkpoint; `close()` ends that thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from voxmeter.adapters.sqlite import SqliteStorage
from voxmeter.domain.events import UsageEvent


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "voxmeter-checkpoint"]


def _batch(first: int, size: int) -> list[UsageEvent]:
    return [
        UsageEvent(f"e-{n:08d}", "ivr_minutes", n, 24316, 1_000_000, None)
        for n in range(first, first + size)
    ]


def test_commits_leave_the_checkpoint_to_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    storage = SqliteStorage(str(path))
    storage.migrate()
    # The writer never checkpoints by itself.
    assert storage._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    size_before = path.stat().st_size
    for n in range(5):
        with storage.write() as tx:
            tx.insert_new(1, _batch(n * 2_000, 2_000), received=1)
    # Pages reach the database file only through a checkpoint, which only the thread runs.
    deadline = time.monotonic() + 10
    while path.stat().st_size <= size_before + 100_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.stat().st_size > size_before + 100_000
    assert storage._checkpointer is not None
    assert storage._checkpointer.checkpoints >= 1
    assert len(_checkpoint_threads()) == 1
    storage.close()
    assert _checkpoint_threads() == []


def test_no_thread_until_the_first_write_and_none_for_a_memory_database(tmp_path: Path) -> None:
    before = len(_checkpoint_threads())
    storage = SqliteStorage(str(tmp_path / "v.db"))
    storage.migrate()
    storage.check_schema()
    assert len(_checkpoint_threads()) == before
    storage.close()

    memory = SqliteStorage(":memory:")
    memory.migrate()
    with memory.write() as tx:
        tx.insert_new(1, _batch(0, 10), received=1)
    assert memory._checkpointer is None
    assert len(_checkpoint_threads()) == before
    memory.close()


def test_every_event_is_readable_after_close_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "v.db")
    storage = SqliteStorage(path)
    storage.migrate()
    for n in range(3):
        with storage.write() as tx:
            tx.insert_new(1, _batch(n * 1_000, 1_000), received=1)
    storage.close()
    again = SqliteStorage(path)
    listed = list(again.events(1, 0, 10**9, None, None, 5_000))
    assert [e.id for e in listed] == [f"e-{n:08d}" for n in range(3_000)]
    again.close()
