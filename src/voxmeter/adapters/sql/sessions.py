"""Dashboard sign-in sessions (the DashboardSessions port) for both SQL adapters: each change
is committed at once, on its own (a session is access, not money: no audit entry), so any
worker process or machine sharing the database sees it."""

from __future__ import annotations

from voxmeter.adapters.sql.tenancy import SqlStatements
from voxmeter.domain.sessions import Session


class SqlDashboardSessions(SqlStatements):
    def create_session(self, secret_hash: str, session: Session) -> None:
        self._change(
            self.dialect.sql(
                "INSERT INTO dashboard_sessions (hash, token_id, operation_id, created, last_seen)"
                " VALUES (?, ?, ?, ?, ?)"
            ),
            (
                secret_hash,
                session.token_id,
                session.operation_id,
                session.created,
                session.last_seen,
            ),
        )

    def session(self, secret_hash: str) -> Session | None:
        found = self._rows(
            self.dialect.sql(
                "SELECT token_id, operation_id, created, last_seen FROM dashboard_sessions"
                " WHERE hash = ?"
            ),
            (secret_hash,),
        )
        if not found:
            return None
        token_id, operation_id, created, last_seen = found[0]
        return Session(
            str(token_id),
            None if operation_id is None else int(operation_id),
            int(created),
            int(last_seen),
        )

    def touch_session(self, secret_hash: str, when: int) -> None:
        self._change(
            self.dialect.sql("UPDATE dashboard_sessions SET last_seen = ? WHERE hash = ?"),
            (when, secret_hash),
        )

    def admin_token_used(self, token_id: str, when: int) -> None:
        self._change(
            self.dialect.sql(
                "UPDATE admin_tokens SET last_used = ? WHERE id = ?"
                " AND (last_used IS NULL OR last_used < ?)"
            ),
            (when, token_id, when),
        )

    def end_session(self, secret_hash: str) -> None:
        self._change(
            self.dialect.sql("DELETE FROM dashboard_sessions WHERE hash = ?"), (secret_hash,)
        )
