"""Copying the write-ahead log into the database on a thread of its own.

With SQLite's automatic checkpoints, the commit that crosses the WAL's threshold copies every
page back while holding the write lock, and ingest waits. Here the writer only appends to the
WAL; this thread checkpoints (PASSIVE: it never blocks the writer or readers) shortly after
commits, on the other core.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

log = logging.getLogger("voxmeter.storage")

#: The least time between two checkpoints: pages rewritten by several commits in that time
#: are copied once.
MIN_INTERVAL = 0.1


class Checkpointer:
    """A daemon thread that checkpoints after commits; `nudge()` after each, `stop()` to end."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._due = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.checkpoints = 0
        """Completed checkpoint calls (for tests and metrics)."""

    def nudge(self) -> None:
        """A commit happened: checkpoint soon. Starts the thread on first use."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(
                        target=self._run, name="voxmeter-checkpoint", daemon=True
                    )
                    self._thread.start()
        self._due.set()

    def stop(self) -> None:
        """Finish the checkpoint under way, if any, and end the thread."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._due.set()
        if thread is not None:
            thread.join(timeout=30)

    def _run(self) -> None:
        conn = self._connect()
        failing = False
        try:
            while True:
                self._due.wait()
                if self._stopping:
                    return
                self._due.clear()
                started = time.monotonic()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # e.g. the disk is full: the WAL only grows
                    if not failing:
                        log.warning("WAL checkpoint failed (will retry): %s", exc)
                    failing = True
                else:
                    failing = False
                    self.checkpoints += 1
                rest = MIN_INTERVAL - (time.monotonic() - started)
                if rest > 0 and not self._stopping:
                    time.sleep(rest)
        finally:
            conn.close()
