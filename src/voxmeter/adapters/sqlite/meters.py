"""Meters: read-merge-save inside a write, unique subjects, and the figures of a month."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from voxmeter.adapters.sql.cache import MonthCache
from voxmeter.adapters.sqlite.hooks import ReadHooks, WriteHooks
from voxmeter.adapters.sqlite.statements import (
    _METERS_OF_KEYS,
    _SAVE_METERS,
    _encode,
    _meter_rows,
    _one,
)
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
        new: dict[MeterKey, int] = defaultdict(int)
        for (product, month, subject), n in uses.items():
            pid = self._products.id_for(self._conn, product)
            row = self._conn.execute(
                "INSERT INTO subjects (operation_id, product_id, month, subject, n)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
                " RETURNING n",
                (operation_id, pid, month, subject, n),
            ).fetchone()
            if int(row[0]) == n:
                new[(product, month)] += 1
            else:
                new[(product, month)] += 0
        return dict(new)

    def remove_subject(self, operation_id: int, product: str, month: int, subject: str) -> bool:
        pid = self._products.id_for(self._conn, product)
        key = (operation_id, pid, month, subject)
        where = "operation_id = ? AND product_id = ? AND month = ? AND subject = ?"
        row = self._conn.execute(
            f"UPDATE subjects SET n = n - 1 WHERE {where} RETURNING n",  # noqa: S608
            key,
        ).fetchone()
        if row is not None and int(row[0]) <= 0:
            self._conn.execute(f"DELETE FROM subjects WHERE {where}", key)  # noqa: S608
            return True
        return False

    def meters(self, operation_id: int, keys_: Iterable[MeterKey]) -> dict[MeterKey, MeterState]:
        """The stored states of these keys, in one statement (one GIL hand-off)."""
        wanted = {}
        for product, month in keys_:
            pid = self._products.known(product)
            if pid is not None:
                wanted[(pid, month)] = (product, month)
        if not wanted:
            return {}
        packed = _one(self._conn, _METERS_OF_KEYS, (operation_id, _encode(list(wanted))))
        return {
            wanted[(pid, month)]: MeterState(int(total), last_time, int(last_value))
            for pid, month, total, last_time, last_value in _meter_rows(packed)
        }

    def save_meters(self, operation_id: int, states: dict[MeterKey, MeterState]) -> None:
        rows = [
            (
                self._products.id_for(self._conn, product),
                month,
                str(state.total),  # TEXT: a total may outgrow 64 bits
                state.last_time,
                state.last_value,
            )
            for (product, month), state in states.items()
        ]
        self._conn.execute(_SAVE_METERS, (operation_id, _encode(rows)))


class MeterReads(MonthCache, ReadHooks):
    """A month's meter states and carried-in levels, cached by `version()` (sql/cache.py)."""

    def frozen_figures(self, operation_id: int, month: int) -> dict[str, int] | None:
        raise NotImplementedError

    def _others_version(self) -> int:
        """SQLite's `data_version`: changes with every other connection's commit."""
        return int(self._reader().execute("PRAGMA data_version").fetchone()[0])

    def _read_month(
        self, operation_id: int, month: int, products: tuple[str, ...], levels: tuple[str, ...]
    ) -> MonthMeters:
        """Three reads in one read transaction (one snapshot)."""
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            frozen = self.frozen_figures(operation_id, month)
            if frozen is None:
                states = self.meter_states(operation_id, month, list(products))
                carried = self.carried_levels(operation_id, month, list(levels))
            else:
                states, carried = {}, {}
        finally:
            conn.execute("COMMIT")
        return MonthMeters(frozen, states, carried)

    def meter_states(
        self, operation_id: int, month: int, products: list[str]
    ) -> dict[str, MeterState]:
        conn = self._reader()
        found: dict[str, MeterState] = {}
        if len(products) == 1:
            pid = self._product_id(products[0])
            if pid is None:
                return found
            row = conn.execute(
                "SELECT total, last_time, last_value FROM meters"
                " WHERE operation_id = ? AND product_id = ? AND month = ?",
                (operation_id, pid, month),
            ).fetchone()
            if row is not None:
                found[products[0]] = MeterState(int(row[0]), row[1], int(row[2]))
            return found
        wanted = set(products)
        for pid, total, last_time, last_value in conn.execute(
            "SELECT product_id, total, last_time, last_value FROM meters"
            " WHERE operation_id = ? AND month = ?",
            (operation_id, month),
        ):
            api = self._api(pid)
            if api in wanted:
                found[api] = MeterState(int(total), last_time, int(last_value))
        return found

    def carried_levels(self, operation_id: int, month: int, products: list[str]) -> dict[str, int]:
        conn = self._reader()
        found: dict[str, int] = {}
        for api in products:
            pid = self._product_id(api)
            if pid is None:
                continue
            row = conn.execute(
                "SELECT last_value FROM meters WHERE operation_id = ? AND product_id = ?"
                " AND month < ? AND last_time IS NOT NULL ORDER BY month DESC LIMIT 1",
                (operation_id, pid, month),
            ).fetchone()
            if row is not None:
                found[api] = int(row[0])
        return found
