"""Mirrors, their sweep leases and readings (the MirrorReads and MirrorWrites ports) for both
SQL adapters.

A lease is a row update that succeeds only when the mirror is due and no live lease holds it:
one atomic statement on either database, so among any number of processes exactly one takes a
mirror, and a killed process's lease simply expires. The sweep's state is one JSON column; the
next due time has a column of its own for the scheduler's query.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from voxmeter.adapters.sql.tenancy import SqlStatements, SqlTransactionStatements
from voxmeter.domain.meters import MeterKey
from voxmeter.domain.mirrors import Failure, MirrorOptions, SyncState
from voxmeter.domain.quantities import format_micro, to_micro
from voxmeter.domain.readings import Reading
from voxmeter.service.ports import MirrorRecord, StoredReading

_COLUMNS = (
    "operation_id, upstream_url, token, interval_minutes, budget_percent, stale_minutes,"
    " state, lease_owner, next_due"
)


def encode_state(state: SyncState) -> str:
    return json.dumps(dataclasses.asdict(state), separators=(",", ":"))


def decode_state(text: str) -> SyncState:
    values: dict[str, Any] = json.loads(text)
    known = {f.name for f in dataclasses.fields(SyncState)}
    values = {k: v for k, v in values.items() if k in known}
    if values.get("failure") is not None:
        values["failure"] = Failure(values["failure"])
    return SyncState(**values)


def _record(row: Sequence[Any]) -> MirrorRecord:
    return MirrorRecord(
        operation_id=int(row[0]),
        options=MirrorOptions(
            upstream_url=None if row[1] is None else str(row[1]),
            interval_minutes=int(row[3]),
            budget_percent=int(row[4]),
            stale_minutes=int(row[5]),
        ),
        sealed_token=str(row[2]),
        state=dataclasses.replace(decode_state(str(row[6])), next_due=int(row[8])),
        lease_owner=None if row[7] is None else str(row[7]),
    )


class SqlMirrors(SqlStatements):
    """Mirrors as committed; leases taken and given back one statement at a time."""

    def mirrors(self) -> list[MirrorRecord]:
        found = self._rows(f"SELECT {_COLUMNS} FROM mirrors ORDER BY operation_id")  # noqa: S608
        return [_record(r) for r in found]

    def mirror(self, operation_id: int) -> MirrorRecord | None:
        found = self._rows(
            self.dialect.sql(f"SELECT {_COLUMNS} FROM mirrors WHERE operation_id = ?"),  # noqa: S608
            (operation_id,),
        )
        return _record(found[0]) if found else None

    def due_mirrors(self, now: int, limit: int) -> list[int]:
        found = self._rows(
            self.dialect.sql(
                "SELECT operation_id FROM mirrors WHERE next_due <= ?"
                " AND (lease_owner IS NULL OR lease_until < ?) ORDER BY next_due LIMIT ?"
            ),
            (now, now, limit),
        )
        return [int(r[0]) for r in found]

    def claim_mirror(self, operation_id: int, owner: str, now: int, until: int) -> bool:
        _, returned = self._change(
            self.dialect.sql(
                "UPDATE mirrors SET lease_owner = ?, lease_until = ?"
                " WHERE operation_id = ? AND next_due <= ?"
                " AND (lease_owner IS NULL OR lease_until < ?) RETURNING operation_id"
            ),
            (owner, until, operation_id, now, now),
        )
        return bool(returned)

    def renew_lease(self, operation_id: int, owner: str, until: int) -> bool:
        _, returned = self._change(
            self.dialect.sql(
                "UPDATE mirrors SET lease_until = ? WHERE operation_id = ? AND lease_owner = ?"
                " RETURNING operation_id"
            ),
            (until, operation_id, owner),
        )
        return bool(returned)

    def release_lease(self, operation_id: int, owner: str) -> None:
        self._change(
            self.dialect.sql(
                "UPDATE mirrors SET lease_owner = NULL, lease_until = 0"
                " WHERE operation_id = ? AND lease_owner = ?"
            ),
            (operation_id, owner),
        )

    def readings(self, operation_id: int, first_month: int, last_month: int) -> list[StoredReading]:
        found = self._rows(
            self.dialect.sql(
                "SELECT product, month, figure, first_seen, last_seen FROM mirror_readings"
                " WHERE operation_id = ? AND month >= ? AND month <= ?"
                " ORDER BY product{order}, month, first_seen"
            ),
            (operation_id, first_month, last_month),
        )
        return [
            StoredReading(str(p), int(m), to_micro(Decimal(str(f))), int(a), int(b))
            for p, m, f, a, b in found
        ]


class SqlMirrorWrites(SqlTransactionStatements):
    """Mirrors and readings changed inside a write transaction."""

    def create_mirror(self, record: MirrorRecord) -> None:
        opts = record.options
        self._run(
            self.dialect.sql(
                "INSERT INTO mirrors (operation_id, upstream_url, token, interval_minutes,"
                " budget_percent, stale_minutes, state, next_due, lease_owner, lease_until)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0)"
            ),
            (
                record.operation_id,
                opts.upstream_url,
                record.sealed_token,
                opts.interval_minutes,
                opts.budget_percent,
                opts.stale_minutes,
                encode_state(record.state),
                record.state.next_due,
            ),
        )
        self._run(
            self.dialect.sql("UPDATE operations SET mirror = TRUE WHERE id = ?"),
            (record.operation_id,),
        )

    def update_mirror(self, operation_id: int, options: MirrorOptions, sealed: str | None) -> bool:
        changed, _ = self._run(
            self.dialect.sql(
                "UPDATE mirrors SET upstream_url = ?, token = coalesce(?, token),"
                " interval_minutes = ?, budget_percent = ?, stale_minutes = ?, next_due = 0"
                " WHERE operation_id = ?"
            ),
            (
                options.upstream_url,
                sealed,
                options.interval_minutes,
                options.budget_percent,
                options.stale_minutes,
                operation_id,
            ),
        )
        return changed > 0

    def last_readings(self, operation_id: int, keys: Iterable[MeterKey]) -> dict[MeterKey, int]:
        found: dict[MeterKey, int] = {}
        for product, month in keys:
            rows = self._run(
                self.dialect.sql(
                    "SELECT figure FROM mirror_readings WHERE operation_id = ? AND product = ?"
                    " AND month = ? ORDER BY first_seen DESC LIMIT 1"
                ),
                (operation_id, product, month),
            )[1]
            if rows:
                found[(product, month)] = to_micro(Decimal(str(rows[0][0])))
        return found

    def store_readings(self, operation_id: int, readings: list[Reading]) -> int:
        latest = self.last_readings(operation_id, [(r.product, r.month) for r in readings])
        new = 0
        for r in readings:
            key = (operation_id, r.product, r.month)
            if latest.get((r.product, r.month)) == r.figure:
                self._run(
                    self.dialect.sql(
                        "UPDATE mirror_readings SET last_seen = ? WHERE operation_id = ?"
                        " AND product = ? AND month = ? AND last_seen < ? AND first_seen = ("
                        " SELECT max(first_seen) FROM mirror_readings WHERE operation_id = ?"
                        " AND product = ? AND month = ?)"
                    ),
                    (r.seen, operation_id, r.product, r.month, r.seen, *key),
                )
                continue
            self._run(
                self.dialect.sql(
                    "INSERT INTO mirror_readings"
                    " (operation_id, product, month, figure, first_seen, last_seen)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                (operation_id, r.product, r.month, format_micro(r.figure), r.seen, r.seen),
            )
            latest[(r.product, r.month)] = r.figure
            new += 1
        return new

    def finish_sweep(self, operation_id: int, owner: str, state: SyncState) -> bool:
        changed, _ = self._run(
            self.dialect.sql(
                "UPDATE mirrors SET state = ?, next_due = ?, lease_owner = NULL, lease_until = 0"
                " WHERE operation_id = ? AND lease_owner = ?"
            ),
            (encode_state(state), state.next_due, operation_id, owner),
        )
        return changed > 0
