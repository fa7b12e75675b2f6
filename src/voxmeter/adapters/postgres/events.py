"""Events: storing new ones (deduplicated for ever), voiding, and listing them."""

from __future__ import annotations

from collections.abc import Iterator

from psycopg import errors as pg_errors

from voxmeter.adapters.postgres.hooks import ReadHooks, WriteHooks
from voxmeter.adapters.postgres.statements import (
    _INSERT_BATCH,
    _INSERT_FRESH,
    EVENT_COLUMNS,
    METER,
    _encode,
    stored,
)
from voxmeter.domain.events import UsageEvent
from voxmeter.service.ports import StoredEvent


class EventWrites(WriteHooks):
    """The event side of a write transaction."""

    def known_ids(self, operation_id: int, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = (
            self._for(operation_id)
            .execute(
                "SELECT e.id FROM jsonb_array_elements_text(%s::jsonb) AS u(id)"
                " JOIN events AS e ON e.operation_id = %s AND e.id = u.id",
                (_encode(ids).decode(), operation_id),
            )
            .fetchall()
        )
        return {str(r[0]) for r in rows}

    def insert_new(
        self, operation_id: int, events: list[UsageEvent], received: int
    ) -> list[UsageEvent]:
        """One INSERT for the whole batch; see _INSERT_BATCH for how ids stored before are
        skipped. The first copy of an id wins, in this batch too."""
        if not events:
            return []
        conn = self._for(operation_id)
        pids = self._products.ids(conn, {e.product for e in events})
        args = {
            "op": operation_id,
            "pids": _encode(pids).decode(),
            "received": received,
            "events": _encode(events).decode(),
        }
        conn.execute("SAVEPOINT insert_new")
        try:
            conn.execute(_INSERT_BATCH, args)
            fresh = events
        except pg_errors.UniqueViolation:
            conn.execute("ROLLBACK TO SAVEPOINT insert_new")
            stored = {str(r[0]) for r in conn.execute(_INSERT_FRESH, args).fetchall()}
            fresh = []
            for e in events:
                if e.id in stored:
                    fresh.append(e)
                    stored.discard(e.id)
        conn.execute("RELEASE SAVEPOINT insert_new")
        self.changed = self.changed or bool(fresh)
        return fresh

    def event_for_void(self, operation_id: int, event_id: str) -> StoredEvent | None:
        row = (
            self._for(operation_id)
            .execute(
                f"SELECT {EVENT_COLUMNS} FROM events AS e"  # noqa: S608
                " JOIN products AS p ON p.id = e.product_id"
                " WHERE e.operation_id = %s AND e.id = %s",
                (operation_id, event_id),
            )
            .fetchone()
        )
        if row is None:
            return None
        event = stored(row)
        self._voidable[event.seq] = event.id
        return event

    def mark_voided(self, operation_id: int, seq: int, when: int) -> None:
        conn = self._for(operation_id, METER)
        event_id = self._voidable.get(seq)
        if event_id is not None:  # found by event_for_void: reach it through the id index
            conn.execute(
                "UPDATE events SET voided = %s WHERE operation_id = %s AND id = %s AND seq = %s",
                (when, operation_id, event_id, seq),
            )
        else:
            conn.execute(
                "UPDATE events SET voided = %s WHERE operation_id = %s AND seq = %s",
                (when, operation_id, seq),
            )
        self.changed = True

    def month_events(
        self, operation_id: int, product: str, month: int, start: int, end: int
    ) -> list[UsageEvent]:
        rows = (
            self._for(operation_id, METER)
            .execute(
                "SELECT e.id, e.time, e.quantity, e.subject FROM events AS e"
                " WHERE e.operation_id = %s AND e.time >= %s AND e.time < %s"
                " AND e.product_id = (SELECT id FROM products WHERE api = %s)"
                " AND e.voided IS NULL ORDER BY e.seq",
                (operation_id, start, end, product),
            )
            .fetchall()
        )
        return [UsageEvent(str(i), product, int(t), month, int(q), s) for i, t, q, s in rows]


class EventLog(ReadHooks):
    """Listing events for reconciliation."""

    def events(
        self,
        operation_id: int,
        start: int,
        end: int,
        product: str | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> Iterator[StoredEvent]:
        """Fetched whole (a page is at most 60,001 rows), so the connection goes back to the
        pool before the caller iterates."""
        query = (
            f"SELECT {EVENT_COLUMNS} FROM events AS e"  # noqa: S608
            " JOIN products AS p ON p.id = e.product_id"
            " WHERE e.operation_id = %(op)s AND e.time >= %(start)s AND e.time < %(end)s"
        )
        args: dict[str, object] = {"op": operation_id, "start": start, "end": end}
        if product is not None:
            # A scalar subquery, not a filter on the join: the planner then walks events_by_time
            # in order and stops at the limit.
            query += " AND e.product_id = (SELECT id FROM products WHERE api = %(product)s)"
            args["product"] = product
        if after is not None:
            query += " AND (e.time, e.seq) > (%(after_time)s, %(after_seq)s)"
            args["after_time"], args["after_seq"] = after
        query += " ORDER BY e.time, e.seq LIMIT %(limit)s"
        args["limit"] = limit
        with self._conn() as conn:
            rows = conn.execute(query.encode(), args).fetchall()
        return iter([stored(r) for r in rows])
