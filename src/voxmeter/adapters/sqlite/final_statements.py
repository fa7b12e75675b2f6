"""Final statements: stored once in the transaction that closes their month, read back as is."""

from __future__ import annotations

from voxmeter.adapters.sqlite.hooks import ReadHooks, WriteHooks


class StatementWrites(WriteHooks):
    def store_statement(self, operation_id: int, month: int, body: bytes) -> None:
        self._conn.execute(
            "INSERT INTO statements (operation_id, month, body) VALUES (?, ?, ?)",
            (operation_id, month, body),
        )


class StatementReads(ReadHooks):
    def final_statement(self, operation_id: int, month: int) -> bytes | None:
        row = (
            self._reader()
            .execute(
                "SELECT body FROM statements WHERE operation_id = ? AND month = ?",
                (operation_id, month),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])
