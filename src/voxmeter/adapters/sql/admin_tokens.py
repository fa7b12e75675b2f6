"""Deployment-wide admin tokens (the AdminTokens port) for both SQL adapters. They live in a
table of their own, so no API request can ever authenticate with one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from voxmeter.adapters.sql.tenancy import SqlStatements, SqlTransactionStatements
from voxmeter.domain.tenancy import AdminToken

_COLUMNS = "id, description, created, revoked, last_used"


def _admin_token(row: Sequence[Any]) -> AdminToken:
    return AdminToken(
        id=str(row[0]),
        description=str(row[1]),
        created=int(row[2]),
        revoked=None if row[3] is None else int(row[3]),
        last_used=None if row[4] is None else int(row[4]),
    )


class SqlAdminTokens(SqlStatements):
    def admin_token_by_hash(self, secret_hash: str) -> tuple[AdminToken, str] | None:
        found = self._rows(
            self.dialect.sql(f"SELECT {_COLUMNS}, hash FROM admin_tokens WHERE hash = ?"),  # noqa: S608
            (secret_hash,),
        )
        return (_admin_token(found[0]), str(found[0][5])) if found else None

    def admin_tokens(self) -> list[AdminToken]:
        found = self._rows(
            self.dialect.sql(f"SELECT {_COLUMNS} FROM admin_tokens ORDER BY created, id{{order}}")  # noqa: S608
        )
        return [_admin_token(r) for r in found]


class SqlAdminTokenWrites(SqlTransactionStatements):
    """Creating and revoking admin tokens inside a write transaction (beside the audit entry);
    revoking ends the token's dashboard sessions in the same transaction."""

    def create_admin_token(self, token: AdminToken, secret_hash: str) -> None:
        self._run(
            self.dialect.sql(
                "INSERT INTO admin_tokens (id, hash, description, created) VALUES (?, ?, ?, ?)"
            ),
            (token.id, secret_hash, token.description, token.created),
        )

    def revoke_admin_token(self, token_id: str, when: int) -> bool:
        changed, _ = self._run(
            self.dialect.sql(
                "UPDATE admin_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL"
            ),
            (when, token_id),
        )
        if changed:
            self.end_token_sessions(token_id)
        return changed > 0

    def end_token_sessions(self, token_id: str) -> None:
        """Every dashboard session signed in with the token ends at once."""
        self._run(
            self.dialect.sql("DELETE FROM dashboard_sessions WHERE token_id = ?"), (token_id,)
        )
