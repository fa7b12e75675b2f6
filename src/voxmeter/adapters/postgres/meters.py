"""Meters: read-merge-save inside a write, unique subjects, and the figures of a month."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from voxmeter.adapters.postgres.hooks import ReadHooks, WriteHooks
from voxmeter.adapters.postgres.statements import _MONTH_METERS, METER, _encode
from voxmeter.adapters.sql.cache import MonthCache
from voxmeter.adapters.sql.rows import meter_state
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.meters import MeterKey, MeterState
from voxmeter.service.ports import MonthMeters


class MeterWrites(WriteHooks):
    """The meter side of a write transaction."""

    def add_subjects(self, operation_id: int, events: list[UsageEvent]) -> dict[MeterKey, int]:
        uses: dict[tuple[str, int, str], int] = defaultdict(int)
        for e in events:
            if e.subject is not None:
                uses[(e.product, e.month, e.subject)] += 1
        if not uses:
            return {}
        conn = self._for(operation_id, METER)
        pids = self._products.ids(conn, {product for product, _, _ in uses})
        apis = {pid: api for api, pid in pids.items()}
        rows = conn.execute(
            "INSERT INTO subjects (operation_id, product_id, month, subject, n)"
            " SELECT %s, (u.e ->> 0)::integer, (u.e ->> 1)::integer, u.e ->> 2,"
            " (u.e ->> 3)::bigint FROM jsonb_array_elements(%s::jsonb) AS u(e)"
            " ON CONFLICT (operation_id, product_id, month, subject)"
            " DO UPDATE SET n = subjects.n + excluded.n"
            " RETURNING product_id, month, subject, n",
            (
                operation_id,
                _encode([[pids[p], m, s, n] for (p, m, s), n in uses.items()]).decode(),
            ),
        ).fetchall()
        self.changed = True
        new: dict[MeterKey, int] = defaultdict(int)
        for pid, month, subject, n in rows:
            key = (apis[int(pid)], int(month))
            # A subject is new to the month when its count is exactly what this batch added.
            new[key] += int(int(n) == uses[(key[0], key[1], str(subject))])
        return dict(new)

    def remove_subject(self, operation_id: int, product: str, month: int, subject: str) -> bool:
        conn = self._for(operation_id, METER)
        pid = self._products.ids(conn, [product])[product]
        key = (operation_id, pid, month, subject)
        row = conn.execute(
            "UPDATE subjects SET n = n - 1 WHERE operation_id = %s AND product_id = %s"
            " AND month = %s AND subject = %s RETURNING n",
            key,
        ).fetchone()
        self.changed = True
        if row is not None and int(row[0]) <= 0:
            conn.execute(
                "DELETE FROM subjects WHERE operation_id = %s AND product_id = %s"
                " AND month = %s AND subject = %s",
                key,
            )
            return True
        return False

    def meters(self, operation_id: int, keys: Iterable[MeterKey]) -> dict[MeterKey, MeterState]:
        wanted = set(keys)
        if not wanted:
            return {}
        rows = (
            self._for(operation_id, METER)
            .execute(
                "SELECT p.api, m.month, m.total, m.last_time, m.last_value"
                " FROM meters AS m JOIN products AS p ON p.id = m.product_id"
                " WHERE m.operation_id = %s AND m.month = ANY(%s::integer[])"
                " AND p.api = ANY(%s::text[])",
                (operation_id, sorted({m for _, m in wanted}), sorted({p for p, _ in wanted})),
            )
            .fetchall()
        )
        found: dict[MeterKey, MeterState] = {}
        for api, month, total, last_time, last_value in rows:
            key = (str(api), int(month))
            if key in wanted:
                found[key] = meter_state(total, last_time, last_value)
        return found

    def save_meters(self, operation_id: int, states: dict[MeterKey, MeterState]) -> None:
        if not states:
            return
        conn = self._for(operation_id, METER)
        pids = self._products.ids(conn, {product for product, _ in states})
        rows = [
            [pids[product], month, str(s.total), s.last_time, s.last_value]
            for (product, month), s in states.items()
        ]
        conn.execute(
            "INSERT INTO meters (operation_id, product_id, month, total, last_time, last_value)"
            " SELECT %s, (u.e ->> 0)::integer, (u.e ->> 1)::integer, (u.e ->> 2)::numeric,"
            " (u.e ->> 3)::bigint, (u.e ->> 4)::bigint FROM jsonb_array_elements(%s::jsonb) AS u(e)"
            " ON CONFLICT (operation_id, product_id, month) DO UPDATE SET"
            " total = excluded.total, last_time = excluded.last_time,"
            " last_value = excluded.last_value",
            (operation_id, _encode(rows).decode()),
        )
        self.changed = True


class MeterReads(MonthCache, ReadHooks):
    """A month's figures in one statement, cached by `version()` (sql/cache.py)."""

    def _read_month(
        self, operation_id: int, month: int, products: tuple[str, ...], levels: tuple[str, ...]
    ) -> MonthMeters:
        """One statement: one snapshot."""
        with self._conn() as conn:
            rows = conn.execute(
                _MONTH_METERS,
                {
                    "op": operation_id,
                    "month": month,
                    "products": list(products),
                    "levels": list(levels),
                },
            ).fetchall()
        if any(kind == "c" for kind, *_ in rows):
            frozen = {str(api): int(total) for kind, api, total, _, _ in rows if kind == "f"}
            return MonthMeters(frozen, {}, {})
        states = {
            str(api): meter_state(total, last_time, last_value)
            for kind, api, total, last_time, last_value in rows
            if kind == "s"
        }
        carried = {str(api): int(value) for kind, api, _, _, value in rows if kind == "l"}
        return MonthMeters(None, states, carried)

    def meter_states(
        self, operation_id: int, month: int, products: list[str]
    ) -> dict[str, MeterState]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT p.api, m.total, m.last_time, m.last_value"
                " FROM meters AS m JOIN products AS p ON p.id = m.product_id"
                " WHERE m.operation_id = %s AND m.month = %s AND p.api = ANY(%s::text[])",
                (operation_id, month, products),
            ).fetchall()
        return {str(api): meter_state(total, t, v) for api, total, t, v in rows}

    def carried_levels(self, operation_id: int, month: int, products: list[str]) -> dict[str, int]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (m.product_id) p.api, m.last_value"
                " FROM meters AS m JOIN products AS p ON p.id = m.product_id"
                " WHERE m.operation_id = %s AND m.month < %s AND m.last_time IS NOT NULL"
                " AND p.api = ANY(%s::text[]) ORDER BY m.product_id, m.month DESC",
                (operation_id, month, products),
            ).fetchall()
        return {str(api): int(value) for api, value in rows}
