"""Alerts, firings and the delivery outbox (AlertWrites, AlertReads, Outbox) for both SQL
adapters.

The at-most-once rule is the primary key of `alert_firings` (alert, month): a firing is an
`INSERT ... ON CONFLICT DO NOTHING` in the transaction of the change of usage, and only a row
actually inserted adds a delivery. A staleness alert's is the primary key of `stale_firings`
(alert, episode), inserted the same way in the transaction that queues its delivery. A sender
claims due deliveries with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so senders in several
processes never take the same row; SQLite has one writer), and gives the claim back with each
attempt's outcome."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from voxmeter.adapters.sql.dialect import POSTGRES
from voxmeter.adapters.sql.prices import DEFAULT_SCOPE, decode_price
from voxmeter.adapters.sql.tenancy import SqlStatements, SqlTransactionStatements
from voxmeter.domain.alerts import Alert, Armed, On, Payload, State
from voxmeter.domain.prices import Price
from voxmeter.domain.quantities import format_micro, to_micro
from voxmeter.service.ports import Claimed, Delivery, DeliveryAttempt, Outcome, StaleWatch

ALERT_COLUMNS = (
    "id, operation_id, product, measure, threshold, url, secret, payload, created, deleted"
)
DELIVERY_COLUMNS = (
    "d.id, d.alert_id, d.operation_id, d.month, d.state, d.attempts, d.created, d.next_attempt"
)
ATTEMPT_COLUMNS = "t.time, t.status, t.error, t.duration"


def _alert(row: Sequence[Any]) -> Alert:
    return Alert(
        id=int(row[0]),
        operation_id=int(row[1]),
        product=None if row[2] is None else str(row[2]),
        on=On(str(row[3])),
        threshold=to_micro(Decimal(str(row[4]))),
        url=str(row[5]),
        secret=str(row[6]),
        payload=Payload(str(row[7])),
        created=int(row[8]),
        deleted=None if row[9] is None else int(row[9]),
    )


@lru_cache(maxsize=65_536)
def _armed(row: tuple[Any, ...]) -> Armed:
    """An armed alert's row decoded, once per process: every batch reads the same rows."""
    alert_id, product, measure, threshold, payload = row
    return Armed(
        int(alert_id),
        None if product is None else str(product),
        On(str(measure)),
        to_micro(Decimal(str(threshold))),
        Payload(str(payload)),
    )


def _delivery(row: Sequence[Any], attempt: DeliveryAttempt | None = None) -> Delivery:
    return Delivery(
        id=int(row[0]),
        alert_id=int(row[1]),
        operation_id=int(row[2]),
        month=int(row[3]),
        state=str(row[4]),
        attempts=int(row[5]),
        created=int(row[6]),
        next_attempt=int(row[7]),
        last_attempt=attempt,
    )


def _attempt(row: Sequence[Any]) -> DeliveryAttempt:
    return DeliveryAttempt(
        time=int(row[0]),
        status=None if row[1] is None else int(row[1]),
        error=None if row[2] is None else str(row[2]),
        duration=int(row[3]),
    )


ARMED_MEMO_ENTRIES = 10_000
"""(operation, month) lists of armed alerts a process keeps; all dropped when full."""

ArmedMemo = dict[tuple[int, int], tuple[int, list[Armed]]]
"""(operation, month) -> (alerts version, its armed alerts): one per storage object."""


class SqlAlertWrites(SqlTransactionStatements):
    _armed_memo: ArmedMemo

    def _bump_alerts(self) -> None:
        self._run("UPDATE alert_state SET version = version + 1 WHERE id = 1", ())

    def create_alert(self, alert: Alert) -> int:
        _, found = self._run(
            self.dialect.sql(
                "INSERT INTO alerts (operation_id, product, measure, threshold, url, secret,"
                " payload, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
            ),
            (
                alert.operation_id,
                alert.product,
                str(alert.on),
                format_micro(alert.threshold),
                alert.url,
                alert.secret,
                str(alert.payload),
                alert.created,
            ),
        )
        self._bump_alerts()
        return int(found[0][0])

    def delete_alert(self, alert_id: int, when: int) -> Alert | None:
        _, found = self._run(
            self.dialect.sql(
                "UPDATE alerts SET deleted = ? WHERE id = ? AND deleted IS NULL"  # noqa: S608
                f" RETURNING {ALERT_COLUMNS}"
            ),
            (when, alert_id),
        )
        if not found:
            return None
        self._bump_alerts()
        return _alert(found[0])

    def armed_alerts(self, operation_id: int, month: int) -> list[Armed]:
        """From the process's memo while the alerts version holds (one primary-key read);
        the version is read before the alerts, so a list is never older than its version."""
        _, version_row = self._run("SELECT version FROM alert_state WHERE id = 1", ())
        version = int(version_row[0][0])
        memo = self._armed_memo
        known = memo.get((operation_id, month))
        if known is not None and known[0] == version:
            return known[1]
        _, found = self._run(
            self.dialect.sql(
                "SELECT a.id, a.product, a.measure, a.threshold, a.payload FROM alerts AS a"
                " WHERE a.operation_id = ? AND a.deleted IS NULL AND a.measure <> ?"
                " AND NOT EXISTS"
                " (SELECT 1 FROM alert_firings AS f WHERE f.alert_id = a.id AND f.month = ?)"
                " ORDER BY a.id"
            ),
            (operation_id, str(On.STALE), month),
        )
        armed = [_armed(tuple(row)) for row in found]
        if len(memo) >= ARMED_MEMO_ENTRIES:
            memo.clear()
        memo[(operation_id, month)] = (version, armed)
        return armed

    def record_firing(self, alert_id: int, month: int, when: int, value: str) -> bool:
        changed, _ = self._run(
            self.dialect.sql(
                "INSERT INTO alert_firings (alert_id, month, fired_at, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (alert_id, month) DO NOTHING"
            ),
            (alert_id, month, when, value),
        )
        if changed != 1:
            return False
        self._bump_alerts()
        return True

    def record_stale_firing(self, alert_id: int, episode: int, when: int) -> bool:
        changed, _ = self._run(
            self.dialect.sql(
                "INSERT INTO stale_firings (alert_id, episode, fired_at) VALUES (?, ?, ?)"
                " ON CONFLICT (alert_id, episode) DO NOTHING"
            ),
            (alert_id, episode, when),
        )
        return changed == 1

    def enqueue_delivery(
        self, alert_id: int, operation_id: int, month: int, body: bytes, when: int
    ) -> int:
        _, found = self._run(
            self.dialect.sql(
                "INSERT INTO deliveries (alert_id, operation_id, month, body, state, created,"
                " next_attempt, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 0) RETURNING id"
            ),
            (alert_id, operation_id, month, body.decode(), str(State.PENDING), when, when),
        )
        return int(found[0][0])

    def level_before(self, operation_id: int, product: str, month: int) -> int | None:
        _, found = self._run(
            self.dialect.sql(
                "SELECT m.last_value FROM meters AS m JOIN products AS p ON p.id = m.product_id"
                " WHERE m.operation_id = ? AND p.api = ? AND m.month < ?"
                " AND m.last_time IS NOT NULL ORDER BY m.month DESC LIMIT 1"
            ),
            (operation_id, product, month),
        )
        return int(found[0][0]) if found else None

    def prices_now(self, operation_id: int, currency: str) -> dict[str, Price]:
        _, found = self._run(
            self.dialect.sql(
                "SELECT scope, product, price FROM prices"
                " WHERE scope IN (?, ?) AND currency = ? ORDER BY scope"
            ),
            (DEFAULT_SCOPE, operation_id, currency),
        )
        return {str(p): decode_price(str(p), currency, str(t)) for _, p, t in found}

    def record_attempt(
        self, delivery_id: int, owner: str, attempt: DeliveryAttempt, outcome: Outcome
    ) -> None:
        self._run(
            self.dialect.sql(
                "INSERT INTO delivery_attempts (delivery_id, time, status, error, duration)"
                " VALUES (?, ?, ?, ?, ?)"
            ),
            (delivery_id, attempt.time, attempt.status, attempt.error, attempt.duration),
        )
        self._run(
            self.dialect.sql(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1,"
                " next_attempt = coalesce(?, next_attempt),"
                " first_attempt = coalesce(first_attempt, ?),"
                " claimed_by = NULL, claimed_until = NULL WHERE id = ? AND state = ?"
            ),
            (
                outcome.state,
                outcome.next_attempt,
                attempt.time,
                delivery_id,
                str(State.PENDING),
            ),
        )


class SqlAlertReads(SqlStatements):
    def stale_watches(self) -> list[StaleWatch]:
        found = self._rows(
            self.dialect.sql(
                "SELECT a.id, a.operation_id, a.payload,"
                " (SELECT max(f.episode) FROM stale_firings AS f WHERE f.alert_id = a.id)"
                " FROM alerts AS a WHERE a.measure = ? AND a.deleted IS NULL ORDER BY a.id"
            ),
            (str(On.STALE),),
        )
        return [
            StaleWatch(int(i), int(o), Payload(str(p)), None if f is None else int(f))
            for i, o, p, f in found
        ]

    def alerts(self, operation_id: int | None) -> list[Alert]:
        where = "deleted IS NULL" + ("" if operation_id is None else " AND operation_id = ?")
        found = self._rows(
            self.dialect.sql(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {where} ORDER BY id"  # noqa: S608
            ),
            () if operation_id is None else (operation_id,),
        )
        return [_alert(r) for r in found]

    def alert(self, alert_id: int) -> Alert | None:
        found = self._rows(
            self.dialect.sql(
                f"SELECT {ALERT_COLUMNS} FROM alerts"  # noqa: S608 - fixed fragments
                " WHERE id = ? AND deleted IS NULL"
            ),
            (alert_id,),
        )
        return _alert(found[0]) if found else None

    def _filter(self, operation_id: int | None, alert_id: int | None) -> tuple[str, list[object]]:
        where: list[str] = []
        args: list[object] = []
        if operation_id is not None:
            where.append("d.operation_id = ?")
            args.append(operation_id)
        if alert_id is not None:
            where.append("d.alert_id = ?")
            args.append(alert_id)
        return (f" WHERE {' AND '.join(where)}" if where else ""), args

    def deliveries(
        self, operation_id: int | None, alert_id: int | None, limit: int
    ) -> list[Delivery]:
        clause, args = self._filter(operation_id, alert_id)
        last = "SELECT max(x.id) FROM delivery_attempts AS x WHERE x.delivery_id = d.id"
        found = self._rows(
            self.dialect.sql(
                f"SELECT {DELIVERY_COLUMNS}, {ATTEMPT_COLUMNS} FROM deliveries AS d"  # noqa: S608
                f" LEFT JOIN delivery_attempts AS t ON t.id = ({last}){clause}"
                " ORDER BY d.id DESC LIMIT ?"
            ),
            (*args, limit),
        )
        return [_delivery(r[:8], None if r[8] is None else _attempt(r[8:])) for r in found]

    def delivery_attempts(
        self, operation_id: int | None, alert_id: int | None, limit: int
    ) -> list[tuple[Delivery, DeliveryAttempt]]:
        clause, args = self._filter(operation_id, alert_id)
        found = self._rows(
            self.dialect.sql(
                f"SELECT {DELIVERY_COLUMNS}, {ATTEMPT_COLUMNS} FROM deliveries AS d"  # noqa: S608
                f" JOIN delivery_attempts AS t ON t.delivery_id = d.id{clause}"
                " ORDER BY t.id DESC LIMIT ?"
            ),
            (*args, limit),
        )
        return [(_delivery(r[:8]), _attempt(r[8:])) for r in found]

    def next_due(self) -> int | None:
        found = self._rows(
            self.dialect.sql("SELECT min(next_attempt) FROM deliveries WHERE state = ?"),
            (str(State.PENDING),),
        )
        return None if not found or found[0][0] is None else int(found[0][0])

    def claim_due(self, owner: str, now: int, lease_until: int, limit: int) -> list[Claimed]:
        skip = " FOR UPDATE SKIP LOCKED" if self.dialect is POSTGRES else ""
        _, claimed = self._change(
            self.dialect.sql(
                "UPDATE deliveries SET claimed_by = ?, claimed_until = ? WHERE id IN"  # noqa: S608
                " (SELECT id FROM deliveries WHERE state = ? AND next_attempt <= ?"
                " AND (claimed_until IS NULL OR claimed_until < ?)"
                f" ORDER BY next_attempt LIMIT ?{skip})"
                " RETURNING id, alert_id, body, attempts, first_attempt"
            ),
            (owner, lease_until, str(State.PENDING), now, now, limit),
        )
        found: list[Claimed] = []
        for delivery_id, alert_id, body, attempts, first in claimed:
            rows = self._rows(
                self.dialect.sql("SELECT url, secret FROM alerts WHERE id = ?"), (alert_id,)
            )
            url, secret = rows[0]
            found.append(
                Claimed(
                    int(delivery_id),
                    int(alert_id),
                    str(body).encode(),
                    str(url),
                    str(secret),
                    int(attempts),
                    None if first is None else int(first),
                )
            )
        return found
