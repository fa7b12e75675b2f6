"""The audit log (AuditWrites inside a transaction, AuditLog reads) for both SQL adapters.

The table refuses UPDATE and DELETE by triggers (see each adapter's schema), so an entry, once
committed with its change, stays as it was written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from voxmeter.adapters.sql.tenancy import SqlStatements, SqlTransactionStatements
from voxmeter.domain.audit import AuditEntry, NewEntry

AUDIT_COLUMNS = "seq, time, actor, action, operation_id, details"


def audit_entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        seq=int(row[0]),
        time=int(row[1]),
        actor=str(row[2]),
        action=str(row[3]),
        operation_id=None if row[4] is None else int(row[4]),
        details=str(row[5]),
    )


class SqlAuditWrites(SqlTransactionStatements):
    def append_audit(self, entry: NewEntry) -> None:
        self._run(
            self.dialect.sql(
                "INSERT INTO audit_log (time, actor, action, operation_id, details)"
                " VALUES (?, ?, ?, ?, ?)"
            ),
            (entry.time, entry.actor, entry.action, entry.operation_id, entry.details),
        )


class SqlAuditLog(SqlStatements):
    def audit_entries(
        self,
        operation_id: int | None,
        start: int | None,
        end: int | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> list[AuditEntry]:
        where: list[str] = []
        args: list[object] = []
        if operation_id is not None:
            where.append("operation_id = ?")
            args.append(operation_id)
        if start is not None:
            where.append("time >= ?")
            args.append(start)
        if end is not None:
            where.append("time < ?")
            args.append(end)
        if after is not None:
            where.append("(time > ? OR (time = ? AND seq > ?))")
            args.extend((after[0], after[0], after[1]))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        found = self._rows(
            self.dialect.sql(
                f"SELECT {AUDIT_COLUMNS} FROM audit_log{clause}"  # noqa: S608 - fixed fragments
                " ORDER BY time, seq LIMIT ?"
            ),
            (*args, limit),
        )
        return [audit_entry(r) for r in found]
