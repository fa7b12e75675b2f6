"""Day meters: read-merge-save inside a write, a day's unique subjects, and a run of days."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from voxmeter.adapters.sqlite.hooks import ReadHooks, WriteHooks
from voxmeter.adapters.sqlite.statements import _encode, _meter_rows, _one
from voxmeter.domain.meters import DayKey, MeterState
from voxmeter.service.ports import DayMeters

# The same shapes as the month meters' statements (statements.py), on the day tables.
_DAY_METERS_OF_KEYS = (
    "SELECT json_group_array(json_array(product_id, day, total, last_time, last_value))"
    " FROM day_meters WHERE operation_id = ?1"
    " AND (product_id, day) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?2))"
)
_SAVE_DAY_METERS = (
    "INSERT OR REPLACE INTO day_meters"
    " (operation_id, product_id, day, total, last_time, last_value)"
    " SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?2)"
)
_DAY_SUBJECT_WHERE = "operation_id = ? AND product_id = ? AND day = ? AND subject = ?"


class DayMeterWrites(WriteHooks):
    """The day-meter side of a write transaction."""

    def add_day_subjects(
        self, operation_id: int, uses: list[tuple[str, int, str]]
    ) -> dict[DayKey, int]:
        counts: dict[tuple[str, int, str], int] = defaultdict(int)
        for use in uses:
            counts[use] += 1
        new: dict[DayKey, int] = defaultdict(int)
        for (product, day, subject), n in counts.items():
            pid = self._products.id_for(self._conn, product)
            row = self._conn.execute(
                "INSERT INTO day_subjects (operation_id, product_id, day, subject, n)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
                " RETURNING n",
                (operation_id, pid, day, subject, n),
            ).fetchone()
            new[(product, day)] += int(int(row[0]) == n)
        return dict(new)

    def remove_day_subject(self, operation_id: int, product: str, day: int, subject: str) -> bool:
        key = (operation_id, self._products.id_for(self._conn, product), day, subject)
        row = self._conn.execute(
            f"UPDATE day_subjects SET n = n - 1 WHERE {_DAY_SUBJECT_WHERE} RETURNING n",  # noqa: S608
            key,
        ).fetchone()
        if row is not None and int(row[0]) <= 0:
            self._conn.execute(f"DELETE FROM day_subjects WHERE {_DAY_SUBJECT_WHERE}", key)  # noqa: S608
            return True
        return False

    def day_meters(self, operation_id: int, keys: Iterable[DayKey]) -> dict[DayKey, MeterState]:
        wanted = {}
        for product, day in keys:
            pid = self._products.known(product)
            if pid is not None:
                wanted[(pid, day)] = (product, day)
        if not wanted:
            return {}
        packed = _one(self._conn, _DAY_METERS_OF_KEYS, (operation_id, _encode(list(wanted))))
        return {
            wanted[(pid, day)]: MeterState(int(total), last_time, int(last_value))
            for pid, day, total, last_time, last_value in _meter_rows(packed)
        }

    def save_day_meters(self, operation_id: int, states: dict[DayKey, MeterState]) -> None:
        rows = [
            (
                self._products.id_for(self._conn, product),
                day,
                str(state.total),  # TEXT: a total may outgrow 64 bits
                state.last_time,
                state.last_value,
            )
            for (product, day), state in states.items()
        ]
        self._conn.execute(_SAVE_DAY_METERS, (operation_id, _encode(rows)))


class DayMeterReads(ReadHooks):
    """A run of days' states and the levels carried into it, in one read transaction."""

    def day_states(
        self,
        operation_id: int,
        first_day: int,
        last_day: int,
        products: tuple[str, ...],
        levels: tuple[str, ...],
    ) -> DayMeters:
        conn = self._reader()
        wanted = set(products)
        states: dict[DayKey, MeterState] = {}
        carried: dict[str, int] = {}
        conn.execute("BEGIN")
        try:
            for pid, day, total, last_time, last_value in conn.execute(
                "SELECT product_id, day, total, last_time, last_value FROM day_meters"
                " WHERE operation_id = ? AND day BETWEEN ? AND ?",
                (operation_id, first_day, last_day),
            ):
                api = self._api(pid)
                if api in wanted:
                    states[(api, int(day))] = MeterState(int(total), last_time, int(last_value))
            for api in levels:
                pid = self._product_id(api)
                if pid is None:
                    continue
                row = conn.execute(
                    "SELECT last_value FROM day_meters WHERE operation_id = ?"
                    " AND product_id = ? AND day < ? AND last_time IS NOT NULL"
                    " ORDER BY day DESC LIMIT 1",
                    (operation_id, pid, first_day),
                ).fetchone()
                if row is not None:
                    carried[api] = int(row[0])
        finally:
            conn.execute("COMMIT")
        return DayMeters(states, carried)
