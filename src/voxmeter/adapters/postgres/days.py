"""Day meters: read-merge-save inside a write, a day's unique subjects, and a run of days."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from voxmeter.adapters.postgres.hooks import ReadHooks, WriteHooks
from voxmeter.adapters.postgres.statements import METER, _encode
from voxmeter.adapters.sql.rows import meter_state
from voxmeter.domain.meters import DayKey, MeterState
from voxmeter.service.ports import DayMeters

_SUBJECT_KEY = "operation_id = %s AND product_id = %s AND day = %s AND subject = %s"

# One statement, one snapshot: the days' states (`s`) and each level's last report before the
# first day (`l`).
_DAY_STATES = """
SELECT 's', p.api, d.day, d.total, d.last_time, d.last_value
FROM day_meters AS d JOIN products AS p ON p.id = d.product_id
WHERE d.operation_id = %(op)s AND d.day BETWEEN %(first)s AND %(last)s
  AND p.api = ANY(%(products)s::text[])
UNION ALL
SELECT 'l', p.api, NULL, NULL, NULL, c.last_value
FROM products AS p CROSS JOIN LATERAL (
    SELECT d.last_value FROM day_meters AS d
    WHERE d.operation_id = %(op)s AND d.product_id = p.id AND d.day < %(first)s
      AND d.last_time IS NOT NULL
    ORDER BY d.day DESC LIMIT 1
) AS c
WHERE p.api = ANY(%(levels)s::text[])
"""


class DayMeterWrites(WriteHooks):
    """The day-meter side of a write transaction (under the operation's meter lock)."""

    def add_day_subjects(
        self, operation_id: int, uses: list[tuple[str, int, str]]
    ) -> dict[DayKey, int]:
        counts: dict[tuple[str, int, str], int] = defaultdict(int)
        for use in uses:
            counts[use] += 1
        if not counts:
            return {}
        conn = self._for(operation_id, METER)
        pids = self._products.ids(conn, {product for product, _, _ in counts})
        apis = {pid: api for api, pid in pids.items()}
        rows = conn.execute(
            "INSERT INTO day_subjects (operation_id, product_id, day, subject, n)"
            " SELECT %s, (u.e ->> 0)::integer, (u.e ->> 1)::integer, u.e ->> 2,"
            " (u.e ->> 3)::bigint FROM jsonb_array_elements(%s::jsonb) AS u(e)"
            " ON CONFLICT (operation_id, product_id, day, subject)"
            " DO UPDATE SET n = day_subjects.n + excluded.n"
            " RETURNING product_id, day, subject, n",
            (
                operation_id,
                _encode([[pids[p], d, s, n] for (p, d, s), n in counts.items()]).decode(),
            ),
        ).fetchall()
        self.changed = True
        new: dict[DayKey, int] = defaultdict(int)
        for pid, day, subject, n in rows:
            key = (apis[int(pid)], int(day))
            new[key] += int(int(n) == counts[(key[0], key[1], str(subject))])
        return dict(new)

    def remove_day_subject(self, operation_id: int, product: str, day: int, subject: str) -> bool:
        conn = self._for(operation_id, METER)
        key = (operation_id, self._products.ids(conn, [product])[product], day, subject)
        row = conn.execute(
            f"UPDATE day_subjects SET n = n - 1 WHERE {_SUBJECT_KEY} RETURNING n",  # noqa: S608
            key,
        ).fetchone()
        self.changed = True
        if row is not None and int(row[0]) <= 0:
            conn.execute(f"DELETE FROM day_subjects WHERE {_SUBJECT_KEY}", key)  # noqa: S608
            return True
        return False

    def day_meters(self, operation_id: int, keys: Iterable[DayKey]) -> dict[DayKey, MeterState]:
        wanted = set(keys)
        if not wanted:
            return {}
        rows = (
            self._for(operation_id, METER)
            .execute(
                "SELECT p.api, d.day, d.total, d.last_time, d.last_value"
                " FROM day_meters AS d JOIN products AS p ON p.id = d.product_id"
                " WHERE d.operation_id = %s AND d.day = ANY(%s::integer[])"
                " AND p.api = ANY(%s::text[])",
                (operation_id, sorted({d for _, d in wanted}), sorted({p for p, _ in wanted})),
            )
            .fetchall()
        )
        found: dict[DayKey, MeterState] = {}
        for api, day, total, last_time, last_value in rows:
            key = (str(api), int(day))
            if key in wanted:
                found[key] = meter_state(total, last_time, last_value)
        return found

    def save_day_meters(self, operation_id: int, states: dict[DayKey, MeterState]) -> None:
        if not states:
            return
        conn = self._for(operation_id, METER)
        pids = self._products.ids(conn, {product for product, _ in states})
        rows = [
            [pids[product], day, str(s.total), s.last_time, s.last_value]
            for (product, day), s in states.items()
        ]
        conn.execute(
            "INSERT INTO day_meters (operation_id, product_id, day, total, last_time, last_value)"
            " SELECT %s, (u.e ->> 0)::integer, (u.e ->> 1)::integer, (u.e ->> 2)::numeric,"
            " (u.e ->> 3)::bigint, (u.e ->> 4)::bigint FROM jsonb_array_elements(%s::jsonb) AS u(e)"
            " ON CONFLICT (operation_id, product_id, day) DO UPDATE SET"
            " total = excluded.total, last_time = excluded.last_time,"
            " last_value = excluded.last_value",
            (operation_id, _encode(rows).decode()),
        )
        self.changed = True


class DayMeterReads(ReadHooks):
    """A run of days' states and the levels carried into it, in one statement."""

    def day_states(
        self,
        operation_id: int,
        first_day: int,
        last_day: int,
        products: tuple[str, ...],
        levels: tuple[str, ...],
    ) -> DayMeters:
        with self._conn() as conn:
            rows = conn.execute(
                _DAY_STATES,
                {
                    "op": operation_id,
                    "first": first_day,
                    "last": last_day,
                    "products": list(products),
                    "levels": list(levels),
                },
            ).fetchall()
        states: dict[DayKey, MeterState] = {}
        carried: dict[str, int] = {}
        for kind, api, day, total, last_time, last_value in rows:
            if kind == "s":
                states[(str(api), int(day))] = meter_state(total, last_time, last_value)
            else:
                carried[str(api)] = int(last_value)
        return DayMeters(states, carried)
