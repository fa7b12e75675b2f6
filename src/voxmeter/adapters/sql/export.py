"""Every operation's month in a few statements, for exporting all statements at once (the
BulkReads port), shared by both SQL adapters: a query per operation would cost tens of thousands
of round trips."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from voxmeter.adapters.sql.rows import meter_state
from voxmeter.adapters.sql.tenancy import SqlStatements
from voxmeter.service.ports import MonthMeters

Row = Sequence[Any]

_FROZEN = (
    "SELECT c.operation_id, p.api, f.total FROM closed_months AS c"
    " LEFT JOIN frozen_figures AS f ON f.operation_id = c.operation_id AND f.month = c.month"
    " LEFT JOIN products AS p ON p.id = f.product_id WHERE c.month = ?"
)
_STATES = (
    "SELECT m.operation_id, p.api, m.total, m.last_time, m.last_value FROM meters AS m"
    " JOIN products AS p ON p.id = m.product_id WHERE m.month = ?"
)
_CARRIED = (
    "SELECT m.operation_id, p.api, m.last_value FROM meters AS m"
    " JOIN products AS p ON p.id = m.product_id"
    " JOIN (SELECT operation_id, product_id, max(month) AS latest FROM meters"
    "  WHERE month < ? AND last_time IS NOT NULL GROUP BY operation_id, product_id) AS x"
    " ON x.operation_id = m.operation_id AND x.product_id = m.product_id AND x.latest = m.month"
)


def _open(found: dict[int, MonthMeters], op: int) -> MonthMeters:
    """The open month of `op` in `found`, added when missing (one object per operation, not
    one per row: this runs for every meter of every operation)."""
    meters = found.get(op)
    if meters is None:
        meters = found[op] = MonthMeters(None, {}, {})
    return meters


class SqlBulkReads(SqlStatements):
    def _snapshot(self, queries: list[tuple[str, Sequence[object]]]) -> list[Sequence[Row]]:
        """Every query's rows, all read from one snapshot of the database."""
        raise NotImplementedError

    def every_month_meters(self, month: int, levels: tuple[str, ...]) -> dict[int, MonthMeters]:
        sql = self.dialect.sql
        frozen_rows, state_rows, carried_rows = self._snapshot(
            [(sql(_FROZEN), (month,)), (sql(_STATES), (month,)), (sql(_CARRIED), (month,))]
        )
        frozen: dict[int, dict[str, int]] = {}
        for op, api, total in frozen_rows:
            figures = frozen.setdefault(int(op), {})
            if api is not None:
                figures[str(api)] = int(total)
        found: dict[int, MonthMeters] = {op: MonthMeters(f, {}, {}) for op, f in frozen.items()}
        wanted = set(levels)
        for op, api, total, last_time, last_value in state_rows:
            if op not in frozen:
                _open(found, op).states[str(api)] = meter_state(total, last_time, last_value)
        for op, api, value in carried_rows:
            if op not in frozen and api in wanted:
                _open(found, op).carried[str(api)] = int(value)
        return found

    def final_statements(self, month: int) -> dict[int, bytes]:
        rows = self._rows(
            self.dialect.sql("SELECT operation_id, body FROM statements WHERE month = ?"),
            (month,),
        )
        return {int(op): bytes(body) for op, body in rows}
