"""Request counts (flushed by the limiter) and the deployment id; settings and reading the
counts are shared with SQLite (adapters/sql/settings.py)."""

from __future__ import annotations

from voxmeter.adapters.postgres import schema
from voxmeter.adapters.postgres.hooks import ReadHooks
from voxmeter.adapters.sql.settings import SqlSettings


class Counters(SqlSettings, ReadHooks):
    def save_request_counts(
        self, day_counts: dict[tuple[str, str], tuple[int, int]], last_used: dict[str, int]
    ) -> None:
        if not day_counts and not last_used:
            return
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            if day_counts:
                cur.executemany(
                    "INSERT INTO request_counts (token_id, day, operation_id, n)"
                    " VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (token_id, day) DO UPDATE SET n = excluded.n",
                    [(t, d, op, n) for (t, d), (op, n) in sorted(day_counts.items())],
                )
            if last_used:
                cur.executemany(
                    "UPDATE tokens SET last_used = greatest(coalesce(last_used, 0), %s)"
                    " WHERE id = %s",
                    [(when, t) for t, when in sorted(last_used.items())],
                )

    def deployment_id(self) -> str:
        with self._conn() as conn:
            return schema.deployment_id(conn)
