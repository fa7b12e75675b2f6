"""Settings and the reading of request counts, for both SQL adapters."""

from __future__ import annotations

from voxmeter.adapters.sql.tenancy import SqlStatements, SqlTransactionStatements


class SqlSettings(SqlStatements):
    def setting(self, name: str) -> str | None:
        found = self._rows(self.dialect.sql("SELECT value FROM settings WHERE name = ?"), (name,))
        return str(found[0][0]) if found else None

    def request_counts(self, day: str, operation_id: int | None) -> dict[str, int]:
        select = "SELECT token_id, n FROM request_counts WHERE day = ?"
        if operation_id is None:
            found = self._rows(self.dialect.sql(select), (day,))
        else:
            found = self._rows(
                self.dialect.sql(select + " AND operation_id = ?"), (day, operation_id)
            )
        return {str(t): int(n) for t, n in found}


class SqlSettingWrites(SqlTransactionStatements):
    """Settings changed inside a write transaction (with the audit entry that records it)."""

    def set_setting(self, name: str, value: str | None) -> None:
        if value is None:
            self._run(self.dialect.sql("DELETE FROM settings WHERE name = ?"), (name,))
        else:
            self._run(
                self.dialect.sql(
                    "INSERT INTO settings (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                ),
                (name, value),
            )
