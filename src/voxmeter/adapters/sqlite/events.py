"""Events: storing new ones (deduplicated for ever), voiding, and listing them."""

from __future__ import annotations

from collections.abc import Iterator

from voxmeter.adapters.sqlite.hooks import ReadHooks, WriteHooks
from voxmeter.adapters.sqlite.statements import (
    _EVENT_BY_ID,
    _HIGHEST_ID_AND_SEQ,
    _IDS_OF_SEQS,
    _LEVEL_SIZES,
    _ORDERED_KNOWN,
    _SEQS_OF_KEYS,
    _chunk_sizes,
    _count_level,
    _encode,
    _id_key,
    _one,
    _rows_sql,
    _texts,
)
from voxmeter.domain.events import UsageEvent, first_copies
from voxmeter.service.ports import StoredEvent


class EventWrites(WriteHooks):
    """The event side of a write transaction."""

    def known_ids(self, operation_id: int, ids: list[str]) -> set[str]:
        return self._known(operation_id, ids, [_id_key(operation_id, i) for i in ids])

    def _known(self, operation_id: int, ids: list[str], keys: list[int]) -> set[str]:
        """Ids found in `event_ids`, or whose key is in a level and whose event has that id."""
        conn = self._conn
        known = set(_texts(_one(conn, _ORDERED_KNOWN, (operation_id, _encode(ids)))))
        seqs = _one(conn, _SEQS_OF_KEYS, (_encode(keys),))
        if seqs != "[]":
            wanted = set(ids)
            matched = _texts(_one(conn, _IDS_OF_SEQS, (operation_id, seqs)))
            known.update(i for i in matched if i in wanted)
        return known

    def insert_new(
        self, operation_id: int, events: list[UsageEvent], received: int
    ) -> list[UsageEvent]:
        """Store the first copy of each id not stored before; return those events."""
        events = first_copies(events)  # the id tables hold each id once
        if not events:
            return []
        conn = self._conn
        ids = [e.id for e in events]
        highest, last_seq = conn.execute(_HIGHEST_ID_AND_SEQ, (operation_id,)).fetchone()
        if highest is None or min(ids) > highest:
            # Python's code point order is SQLite's BINARY order of UTF-8: none can be stored.
            self._append(operation_id, events, received, last_seq)
            fresh = events
        else:
            keys = [_id_key(operation_id, i) for i in ids]
            known = self._known(operation_id, ids, keys)
            fresh = [e for e in events if e.id not in known] if known else events
            if fresh:
                fresh_keys = (
                    keys
                    if len(fresh) == len(events)
                    else [k for k, e in zip(keys, events, strict=True) if e.id not in known]
                )
                self._insert_keyed(operation_id, fresh, fresh_keys, received, last_seq)
        if fresh:
            conn.execute(
                "INSERT INTO event_id_highest (operation_id, id) VALUES (?, ?)"
                " ON CONFLICT DO UPDATE SET id = max(id, excluded.id)",
                (operation_id, max(ids) if fresh is events else max(e.id for e in fresh)),
            )
        return fresh

    def _insert_events(
        self, operation_id: int, events: list[UsageEvent], received: int, before: int
    ) -> int:
        """Store the events in order after seq `before` (the highest stored); return the seq of
        the first (they get consecutive seqs)."""
        conn = self._conn
        pids = {api: self._products.id_for(conn, api) for api in {e.product for e in events}}
        cursor = None
        start = 0
        for size in _chunk_sizes(len(events)):
            chunk = events[start : start + size]
            params: list[object] = [operation_id, received]
            extend = params.extend
            subjects = any(e.subject is not None for e in chunk)
            if subjects:
                for e in chunk:
                    extend((e.id, pids[e.product], e.time, e.quantity, e.subject))
            else:
                for e in chunk:
                    extend((e.id, pids[e.product], e.time, e.quantity))
            cursor = conn.execute(_rows_sql(size, subjects), params)
            start += size
        if cursor is None or cursor.lastrowid != before + len(events):
            raise RuntimeError("events did not get consecutive seqs")
        return before + 1

    def _append(
        self, operation_id: int, events: list[UsageEvent], received: int, last_seq: int
    ) -> None:
        """Ids after all stored ones: appended to `event_ids` in key order (cheap)."""
        first = self._insert_events(operation_id, events, received, last_seq)
        self._conn.execute(
            "INSERT INTO event_ids (operation_id, id, seq)"
            " SELECT operation_id, id, seq FROM events WHERE seq >= ?",
            (first,),
        )

    def _insert_keyed(
        self,
        operation_id: int,
        events: list[UsageEvent],
        keys: list[int],
        received: int,
        last_seq: int,
    ) -> None:
        """Other ids: their keys go to level 0; levels over their size are merged."""
        first = self._insert_events(operation_id, events, received, last_seq)
        self._conn.execute(
            "INSERT INTO event_keys_0 (key, seq) SELECT value, ?2 + key FROM json_each(?1)",
            (_encode(keys), first),
        )
        self._add_to_level(0, len(keys))

    def _add_to_level(self, level: int, added: int) -> None:
        """Count keys added to a level; merge each level that is over its size into the next,
        in key order, in this same transaction (so dedupe stays exact)."""
        conn = self._conn
        keys = _count_level(conn, level, added)
        while level in _LEVEL_SIZES and keys >= _LEVEL_SIZES[level]:
            conn.execute(
                f"INSERT INTO event_keys_{level + 1} (key, seq)"  # noqa: S608
                f" SELECT key, seq FROM event_keys_{level}"
            )
            conn.execute(f"DELETE FROM event_keys_{level}")  # noqa: S608
            _count_level(conn, level, -keys)
            level, keys = level + 1, _count_level(conn, level + 1, keys)

    def event_for_void(self, operation_id: int, event_id: str) -> StoredEvent | None:
        row = self._conn.execute(
            _EVENT_BY_ID, (operation_id, event_id, _id_key(operation_id, event_id))
        ).fetchone()
        if row is None:
            return None
        return StoredEvent(
            row[0], event_id, self._products.apis[row[2]], row[3], row[4], row[5], row[6], row[7]
        )

    def mark_voided(self, operation_id: int, seq: int, when: int) -> None:
        self._conn.execute(
            "UPDATE events SET voided = ? WHERE operation_id = ? AND seq = ?",
            (when, operation_id, seq),
        )

    def month_events(
        self, operation_id: int, product: str, month: int, start: int, end: int
    ) -> list[UsageEvent]:
        pid = self._products.known(product)
        if pid is None:
            return []
        rows = self._conn.execute(
            "SELECT id, time, quantity, subject FROM events INDEXED BY events_by_time"
            " WHERE operation_id = ? AND time >= ? AND time < ? AND product_id = ?"
            " AND voided IS NULL ORDER BY seq",
            (operation_id, start, end, pid),
        )
        return [UsageEvent(i, product, t, month, q, s) for i, t, q, s in rows]


class EventLog(ReadHooks):
    """Listing events for reconciliation, on the reading thread's connection."""

    def events(
        self,
        operation_id: int,
        start: int,
        end: int,
        product: str | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> Iterator[StoredEvent]:
        sql = (
            "SELECT seq, id, product_id, time, quantity, subject, received, voided FROM events"
            " INDEXED BY events_by_time WHERE operation_id = ? AND time >= ? AND time < ?"
        )
        args: list[object] = [operation_id, start, end]
        if product is not None:
            pid = self._product_id(product)
            if pid is None:
                return
            sql += " AND product_id = ?"
            args.append(pid)
        if after is not None:
            sql += " AND (time > ? OR (time = ? AND seq > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY time, seq LIMIT ?"
        args.append(limit)
        for seq, event_id, pid, at, quantity, subject, received, voided in self._reader().execute(
            sql, args
        ):
            yield StoredEvent(
                seq, event_id, self._api(pid), at, quantity, subject, received, voided
            )
