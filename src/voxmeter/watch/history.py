"""The local SQLite history of polled figures.

`snapshots` holds one row per distinct figure: polling the same figure again for the same
operation, month and product only moves `last_seen` and counts the poll, so re-running a poll
(cron, retries) never adds rows. `month_end` holds one frozen row per operation, month and
product, written once by the first poll after the month ended in the operation's timezone,
from the last snapshot of that month. `polls` keeps each operation's last attempt, last success
and last error for the staleness check. Figures are Decimal text, never floats; instants are
integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType

from voxmeter.domain.quantities import format_decimal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    operation TEXT NOT NULL,
    month TEXT NOT NULL,
    api TEXT NOT NULL,
    items TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    polls INTEGER NOT NULL DEFAULT 1,
    UNIQUE (operation, month, api, first_seen)
);
CREATE INDEX IF NOT EXISTS snapshots_by_key ON snapshots (operation, month, api, last_seen);
CREATE TABLE IF NOT EXISTS month_end (
    operation TEXT NOT NULL,
    month TEXT NOT NULL,
    api TEXT NOT NULL,
    items TEXT NOT NULL,
    frozen_at INTEGER NOT NULL,
    PRIMARY KEY (operation, month, api)
);
CREATE TABLE IF NOT EXISTS polls (
    operation TEXT PRIMARY KEY,
    last_attempt INTEGER,
    last_ok INTEGER,
    last_error TEXT
);
"""


class HistoryError(RuntimeError):
    """The history file cannot be used; the message is shown to the user."""


@dataclass(frozen=True, slots=True)
class PollState:
    operation: str
    last_attempt: int | None
    last_ok: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Trend:
    """One product's figures in one month, for `voxmeter history`."""

    api: str
    first: Decimal
    last: Decimal
    snapshots: int
    first_seen: int
    last_seen: int
    month_end: Decimal | None


class History:
    """A history file; use as a context manager. Every write is its own transaction."""

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise HistoryError(f"no history at {self.path}")
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 10000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open history {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # writes
    def record(self, operation: str, month: str, api: str, items: Decimal, at: int) -> bool:
        """Store one polled figure; True when it added a snapshot, False when it was a repeat."""
        text = format_decimal(items)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            latest = self._db.execute(
                "SELECT rowid, items FROM snapshots WHERE operation = ? AND month = ? AND api = ?"
                " ORDER BY last_seen DESC, rowid DESC LIMIT 1",
                (operation, month, api),
            ).fetchone()
            if latest is not None and Decimal(latest[1]) == items:
                self._db.execute(
                    "UPDATE snapshots SET last_seen = max(last_seen, ?), polls = polls + 1"
                    " WHERE rowid = ?",
                    (at, latest[0]),
                )
                added = False
            else:
                self._db.execute(
                    "INSERT OR IGNORE INTO snapshots"
                    " (operation, month, api, items, first_seen, last_seen)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (operation, month, api, text, at, at),
                )
                added = True
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return added

    def freeze_ended(self, operation: str, current_month: str, at: int) -> list[str]:
        """Freeze every month before `current_month` that has snapshots but no month-end yet.

        Each product's month-end figure is its last snapshot of that month; an existing
        month-end row is never changed. Returns the months frozen now.
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            months = [
                m
                for (m,) in self._db.execute(
                    "SELECT DISTINCT month FROM snapshots s WHERE operation = ? AND month < ?"
                    " AND NOT EXISTS (SELECT 1 FROM month_end e WHERE e.operation = s.operation"
                    " AND e.month = s.month AND e.api = s.api) ORDER BY month",
                    (operation, current_month),
                )
            ]
            for month in months:
                self._db.execute(
                    "INSERT OR IGNORE INTO month_end (operation, month, api, items, frozen_at)"
                    " SELECT operation, month, api, items, ? FROM snapshots s"
                    " WHERE operation = ? AND month = ? AND rowid = ("
                    "  SELECT rowid FROM snapshots t WHERE t.operation = s.operation"
                    "  AND t.month = s.month AND t.api = s.api"
                    "  ORDER BY last_seen DESC, rowid DESC LIMIT 1)",
                    (at, operation, month),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return months

    def mark_attempt(self, operation: str, at: int, *, ok: bool, error: str | None = None) -> None:
        if ok:
            self._db.execute(
                "INSERT INTO polls (operation, last_attempt, last_ok, last_error)"
                " VALUES (?, ?, ?, NULL) ON CONFLICT (operation) DO UPDATE SET"
                " last_attempt = excluded.last_attempt, last_ok = excluded.last_ok,"
                " last_error = NULL",
                (operation, at, at),
            )
        else:
            self._db.execute(
                "INSERT INTO polls (operation, last_attempt, last_ok, last_error)"
                " VALUES (?, ?, NULL, ?) ON CONFLICT (operation) DO UPDATE SET"
                " last_attempt = excluded.last_attempt, last_error = excluded.last_error",
                (operation, at, error),
            )

    # reads
    def poll_state(self, operation: str) -> PollState:
        row = self._db.execute(
            "SELECT last_attempt, last_ok, last_error FROM polls WHERE operation = ?",
            (operation,),
        ).fetchone()
        if row is None:
            return PollState(operation, None, None, None)
        return PollState(operation, row[0], row[1], row[2])

    def snapshot_count(self, operation: str | None = None) -> int:
        if operation is None:
            (count,) = self._db.execute("SELECT count(*) FROM snapshots").fetchone()
        else:
            (count,) = self._db.execute(
                "SELECT count(*) FROM snapshots WHERE operation = ?", (operation,)
            ).fetchone()
        return int(count)

    def months(self, operation: str) -> list[str]:
        return [
            m
            for (m,) in self._db.execute(
                "SELECT DISTINCT month FROM snapshots WHERE operation = ? ORDER BY month",
                (operation,),
            )
        ]

    def month_end(self, operation: str, month: str) -> dict[str, Decimal]:
        return {
            api: Decimal(items)
            for api, items in self._db.execute(
                "SELECT api, items FROM month_end WHERE operation = ? AND month = ?",
                (operation, month),
            )
        }

    def trends(self, operation: str, month: str) -> list[Trend]:
        """Each product's first and last figure of the month, by product."""
        frozen = self.month_end(operation, month)
        rows = self._db.execute(
            "SELECT api, items, first_seen, last_seen FROM snapshots"
            " WHERE operation = ? AND month = ? ORDER BY api, first_seen, rowid",
            (operation, month),
        ).fetchall()
        grouped: dict[str, list[tuple[str, int, int]]] = {}
        for api, items, first_seen, last_seen in rows:
            grouped.setdefault(api, []).append((items, first_seen, last_seen))
        return [
            Trend(
                api=api,
                first=Decimal(snaps[0][0]),
                last=Decimal(snaps[-1][0]),
                snapshots=len(snaps),
                first_seen=snaps[0][1],
                last_seen=max(s[2] for s in snaps),
                month_end=frozen.get(api),
            )
            for api, snaps in grouped.items()
        ]
