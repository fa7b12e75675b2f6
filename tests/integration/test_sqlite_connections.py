"""The embedded store's reader connections live and die with their threads: worker pools retire
idle threads and start new ones, and a connection kept beyond its thread would keep its page
cache for ever."""

from __future__ import annotations

import gc
import sqlite3
import threading
from pathlib import Path

from voxmeter.adapters.sqlite import SqliteStorage


def _live_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, sqlite3.Connection))


def test_a_finished_threads_reader_is_closed_and_close_closes_the_rest(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "v.db"))
    storage.migrate()
    baseline = _live_connections()  # the writer (and any other test's leftovers)
    before = {id(o) for o in gc.get_objects() if isinstance(o, sqlite3.Connection)}

    def read() -> None:
        storage.check_schema()

    for _ in range(30):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    assert _live_connections() == baseline

    ready, done = threading.Event(), threading.Event()
    kept: list[sqlite3.Connection] = []

    def hold() -> None:
        read()
        kept.extend(
            o for o in gc.get_objects() if isinstance(o, sqlite3.Connection) and id(o) not in before
        )
        ready.set()
        done.wait(10)

    living = threading.Thread(target=hold)
    living.start()
    assert ready.wait(10)
    assert _live_connections() == baseline + 1  # a living thread keeps its reader
    storage.close()
    assert len(kept) == 1
    assert _is_closed(kept[0])  # close() closed the living thread's reader too
    done.set()
    living.join()


def _is_closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False
