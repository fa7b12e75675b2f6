"""Request counts (flushed by the limiter) and the deployment id; settings and reading the
counts are shared with PostgreSQL (adapters/sql/settings.py)."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager

from voxmeter.adapters.sql.settings import SqlSettings
from voxmeter.adapters.sqlite import schema
from voxmeter.adapters.sqlite.hooks import ReadHooks


class Counters(SqlSettings, ReadHooks):
    _writer: sqlite3.Connection

    def write(self) -> AbstractContextManager[object]:
        raise NotImplementedError

    def save_request_counts(
        self, day_counts: dict[tuple[str, str], tuple[int, int]], last_used: dict[str, int]
    ) -> None:
        if not day_counts and not last_used:
            return
        with self.write() as _:
            self._writer.executemany(
                "INSERT INTO request_counts (token_id, day, operation_id, n) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET n = excluded.n",
                [(t, d, op, n) for (t, d), (op, n) in day_counts.items()],
            )
            self._writer.executemany(
                "UPDATE tokens SET last_used = max(coalesce(last_used, 0), ?) WHERE id = ?",
                [(when, t) for t, when in last_used.items()],
            )

    def deployment_id(self) -> str:
        return schema.deployment_id(self._reader())
