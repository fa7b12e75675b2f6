"""Final statements: stored once in the transaction that closes their month, read back as is."""

from __future__ import annotations

from voxmeter.adapters.postgres.hooks import ReadHooks, WriteHooks
from voxmeter.adapters.postgres.statements import METER


class StatementWrites(WriteHooks):
    def store_statement(self, operation_id: int, month: int, body: bytes) -> None:
        self._for(operation_id, METER).execute(
            "INSERT INTO statements (operation_id, month, body) VALUES (%s, %s, %s)",
            (operation_id, month, body),
        )
        self.changed = True


class StatementReads(ReadHooks):
    def final_statement(self, operation_id: int, month: int) -> bytes | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT body FROM statements WHERE operation_id = %s AND month = %s",
                (operation_id, month),
            ).fetchone()
        return None if row is None else bytes(row[0])
