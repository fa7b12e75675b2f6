"""Months: which are closed, freezing a month's figures, and reading them back."""

from __future__ import annotations

from voxmeter.adapters.postgres.hooks import ReadHooks, WriteHooks
from voxmeter.adapters.postgres.statements import METER, _encode


class MonthWrites(WriteHooks):
    """The month side of a write transaction."""

    def closed_months(self, operation_id: int) -> set[int]:
        rows = (
            self._for(operation_id)
            .execute("SELECT month FROM closed_months WHERE operation_id = %s", (operation_id,))
            .fetchall()
        )
        return {int(r[0]) for r in rows}

    def first_month(self, operation_id: int) -> int | None:
        row = (
            self._for(operation_id)
            .execute("SELECT min(month) FROM meters WHERE operation_id = %s", (operation_id,))
            .fetchone()
        )
        return None if row is None or row[0] is None else int(row[0])

    def freeze(self, operation_id: int, month: int, totals: dict[str, int], when: int) -> None:
        conn = self._for(operation_id, METER)
        pids = self._products.ids(conn, totals)
        conn.execute(
            "INSERT INTO closed_months (operation_id, month, closed) VALUES (%s, %s, %s)",
            (operation_id, month, when),
        )
        conn.execute(
            "INSERT INTO frozen_figures (operation_id, month, product_id, total)"
            " SELECT %s, %s, (u.e ->> 0)::integer, (u.e ->> 1)::numeric"
            " FROM jsonb_array_elements(%s::jsonb) AS u(e)",
            (
                operation_id,
                month,
                _encode([[pids[api], str(total)] for api, total in totals.items()]).decode(),
            ),
        )
        self.changed = True


class MonthReads(ReadHooks):
    """Frozen figures and the first month with events."""

    def frozen_figures(self, operation_id: int, month: int) -> dict[str, int] | None:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT p.api, f.total FROM closed_months AS c"
                " LEFT JOIN frozen_figures AS f"
                " ON f.operation_id = c.operation_id AND f.month = c.month"
                " LEFT JOIN products AS p ON p.id = f.product_id"
                " WHERE c.operation_id = %s AND c.month = %s",
                (operation_id, month),
            ).fetchall()
        if not rows:
            return None
        return {str(api): int(total) for api, total in rows if api is not None}

    def first_month(self, operation_id: int) -> int | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT min(month) FROM meters WHERE operation_id = %s", (operation_id,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])
