"""Months: which are closed, freezing a month's figures, and reading them back."""

from __future__ import annotations

from voxmeter.adapters.sqlite.hooks import ReadHooks, WriteHooks


class MonthWrites(WriteHooks):
    """The month side of a write transaction."""

    def closed_months(self, operation_id: int) -> set[int]:
        rows = self._conn.execute(
            "SELECT month FROM closed_months WHERE operation_id = ?", (operation_id,)
        )
        return {int(r[0]) for r in rows}

    def first_month(self, operation_id: int) -> int | None:
        row = self._conn.execute(
            "SELECT min(month) FROM meters WHERE operation_id = ?", (operation_id,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def freeze(self, operation_id: int, month: int, totals: dict[str, int], when: int) -> None:
        self._conn.execute(
            "INSERT INTO closed_months (operation_id, month, closed) VALUES (?, ?, ?)",
            (operation_id, month, when),
        )
        self._conn.executemany(
            "INSERT INTO frozen_figures (operation_id, month, product_id, total)"
            " VALUES (?, ?, ?, ?)",
            [
                (operation_id, month, self._products.id_for(self._conn, api), str(total))
                for api, total in totals.items()
            ],
        )


class MonthReads(ReadHooks):
    """Frozen figures and the first month with events, on the reading thread's connection."""

    def frozen_figures(self, operation_id: int, month: int) -> dict[str, int] | None:
        conn = self._reader()
        closed = conn.execute(
            "SELECT 1 FROM closed_months WHERE operation_id = ? AND month = ?",
            (operation_id, month),
        ).fetchone()
        if closed is None:
            return None
        rows = conn.execute(
            "SELECT product_id, total FROM frozen_figures WHERE operation_id = ? AND month = ?",
            (operation_id, month),
        )
        return {self._api(pid): int(total) for pid, total in rows}

    def first_month(self, operation_id: int) -> int | None:
        row = (
            self._reader()
            .execute("SELECT min(month) FROM meters WHERE operation_id = ?", (operation_id,))
            .fetchone()
        )
        return None if row is None or row[0] is None else int(row[0])
