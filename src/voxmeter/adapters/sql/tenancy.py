"""Operations and tokens (the Tenancy port) for both SQL adapters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from voxmeter.adapters.sql import rows
from voxmeter.adapters.sql.dialect import Dialect
from voxmeter.domain.tenancy import Operation, Token

Row = Sequence[Any]


class SqlStatements:
    """The two hooks every shared mixin runs its statements through."""

    dialect: ClassVar[Dialect]

    def _rows(self, sql: str, args: Sequence[object] = ()) -> Sequence[Row]:
        """Every row of a read, on a reading connection."""
        raise NotImplementedError

    def _change(self, sql: str, args: Sequence[object]) -> tuple[int, Sequence[Row]]:
        """Run one write on its own (committed at once): (rows changed, rows returned)."""
        raise NotImplementedError


class SqlTransactionStatements:
    """The hook a write transaction's shared mixins run their statements through."""

    dialect: ClassVar[Dialect]

    def _run(self, sql: str, args: Sequence[object]) -> tuple[int, Sequence[Row]]:
        """Run one statement inside the transaction: (rows changed, rows returned)."""
        raise NotImplementedError


class SqlTenancy(SqlStatements):
    """Operations and tokens as committed."""

    def operations(self) -> list[Operation]:
        found = self._rows(
            self.dialect.sql(
                f"SELECT {rows.OPERATION_COLUMNS} FROM operations"  # noqa: S608
                " ORDER BY server{order}, name{order}"
            )
        )
        return [rows.operation(r) for r in found]

    def operation(self, operation_id: int) -> Operation | None:
        found = self._rows(
            self.dialect.sql(
                f"SELECT {rows.OPERATION_COLUMNS} FROM operations WHERE id = ?"  # noqa: S608
            ),
            (operation_id,),
        )
        return rows.operation(found[0]) if found else None

    def token_by_hash(self, secret_hash: str) -> tuple[Token, str] | None:
        found = self._rows(
            self.dialect.sql(
                f"SELECT {rows.TOKEN_COLUMNS}, hash FROM tokens WHERE hash = ?"  # noqa: S608
            ),
            (secret_hash,),
        )
        if not found:
            return None
        return rows.token(found[0]), str(found[0][7])

    def tokens(self, operation_id: int | None) -> list[Token]:
        select = f"SELECT {rows.TOKEN_COLUMNS} FROM tokens"  # noqa: S608
        order = " ORDER BY created, id{order}"
        if operation_id is None:
            found = self._rows(self.dialect.sql(select + order))
        else:
            found = self._rows(
                self.dialect.sql(select + " WHERE operation_id = ?" + order), (operation_id,)
            )
        return [rows.token(r) for r in found]


class SqlTenancyWrites(SqlTransactionStatements):
    """Creating operations and tokens and revoking tokens inside a write transaction.
    `duplicate` is the error the database raises for a second operation of one name."""

    duplicate: ClassVar[type[Exception]]

    def create_operation(
        self,
        name: str,
        server: str,
        timezone: str,
        licenses: int,
        created: int,
        currency: str = "USD",
    ) -> Operation:
        try:
            _, returned = self._run(
                self.dialect.sql(
                    "INSERT INTO operations (name, server, timezone, licenses, created, currency)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
                ),
                (name, server, timezone, licenses, created, currency),
            )
        except self.duplicate as exc:
            raise ValueError(f"operation {name!r} already exists on server {server}") from exc
        return Operation(int(returned[0][0]), name, server, timezone, licenses, created, currency)

    def update_operation(
        self, operation_id: int, licenses: int | None, currency: str | None
    ) -> Operation | None:
        found = self._run(
            self.dialect.sql(
                "UPDATE operations SET licenses = coalesce(?, licenses),"  # noqa: S608
                " currency = coalesce(?, currency) WHERE id = ?"
                f" RETURNING {rows.OPERATION_COLUMNS}"
            ),
            (licenses, currency, operation_id),
        )[1]
        return rows.operation(found[0]) if found else None

    def create_token(self, token: Token, secret_hash: str) -> None:
        self._run(
            self.dialect.sql(
                "INSERT INTO tokens (id, operation_id, hash, description, scopes, created)"
                " VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (
                token.id,
                token.operation_id,
                secret_hash,
                token.description,
                " ".join(sorted(token.scopes)),
                token.created,
            ),
        )

    def revoke_token(self, token_id: str, when: int) -> int | None:
        _, returned = self._run(
            self.dialect.sql(
                "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL"
                " RETURNING operation_id"
            ),
            (when, token_id),
        )
        if not returned:
            return None
        self._run(  # its dashboard sessions end with it
            self.dialect.sql("DELETE FROM dashboard_sessions WHERE token_id = ?"), (token_id,)
        )
        return int(returned[0][0])
