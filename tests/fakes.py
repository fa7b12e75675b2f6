"""An in-memory `Database`: the storage ports' semantics in plain Python, for fast tests.

It keeps the contract the SQLite and PostgreSQL adapters keep (the integration suite runs on it
too): an id is deduplicated for ever, the first copy wins; meters are read, merged and saved in
a transaction that commits whole or not at all; closing freezes a month; events are listed in
(time, seq) order after a cursor. Writers take one lock, so `exclusive` holds by construction.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from voxmeter.adapters.sqlite import schema
from voxmeter.domain.alerts import Alert, Armed, On
from voxmeter.domain.audit import AuditEntry, NewEntry
from voxmeter.domain.events import UsageEvent, first_copies
from voxmeter.domain.meters import DayKey, MeterKey, MeterState
from voxmeter.domain.mirrors import MirrorOptions, SyncState
from voxmeter.domain.prices import Price
from voxmeter.domain.readings import Reading
from voxmeter.domain.sessions import Session
from voxmeter.domain.tenancy import AdminToken, Operation, Token
from voxmeter.service.ports import (
    Claimed,
    DayMeters,
    Delivery,
    DeliveryAttempt,
    MirrorRecord,
    MonthMeters,
    Outcome,
    StaleWatch,
    StoredEvent,
    StoredReading,
)


@dataclasses.dataclass(frozen=True)
class _Delivery:
    """An outbox row."""

    row: Delivery
    body: bytes
    first_attempt: int | None = None
    claimed_by: str | None = None
    claimed_until: int | None = None


def _prices_in(
    prices: dict[tuple[int, str, str], Price], operation_id: int, currency: str
) -> dict[str, Price]:
    """The defaults, then the operation's own, which win."""
    found = {p.product: p for (s, _, c), p in prices.items() if s == 0 and c == currency}
    found.update(
        {p.product: p for (s, _, c), p in prices.items() if s == operation_id and c == currency}
    )
    return found


@dataclasses.dataclass
class _State:
    """Everything kept; copied at the start of a write so a failed one leaves no trace."""

    operations: dict[int, Operation] = dataclasses.field(default_factory=dict)
    tokens: dict[str, tuple[Token, str]] = dataclasses.field(default_factory=dict)
    events: dict[int, tuple[int, UsageEvent, int, int | None]] = dataclasses.field(
        default_factory=dict
    )  # seq -> (operation, event, received, voided)
    ids: dict[tuple[int, str], int] = dataclasses.field(default_factory=dict)  # -> seq
    meters: dict[tuple[int, str, int], MeterState] = dataclasses.field(default_factory=dict)
    subjects: dict[tuple[int, str, int, str], int] = dataclasses.field(default_factory=dict)
    day_meters: dict[tuple[int, str, int], MeterState] = dataclasses.field(default_factory=dict)
    day_subjects: dict[tuple[int, str, int, str], int] = dataclasses.field(default_factory=dict)
    closed: dict[tuple[int, int], dict[str, int]] = dataclasses.field(default_factory=dict)
    counts: dict[tuple[str, str], tuple[int, int]] = dataclasses.field(default_factory=dict)
    settings: dict[str, str] = dataclasses.field(default_factory=dict)
    audit: dict[int, AuditEntry] = dataclasses.field(default_factory=dict)  # seq -> entry
    prices: dict[tuple[int, str, str], Price] = dataclasses.field(default_factory=dict)
    statements: dict[tuple[int, int], bytes] = dataclasses.field(default_factory=dict)
    alerts: dict[int, Alert] = dataclasses.field(default_factory=dict)
    firings: dict[tuple[int, int], tuple[int, str]] = dataclasses.field(default_factory=dict)
    stale_firings: dict[tuple[int, int], int] = dataclasses.field(default_factory=dict)
    deliveries: dict[int, _Delivery] = dataclasses.field(default_factory=dict)
    attempts: dict[int, tuple[int, DeliveryAttempt]] = dataclasses.field(default_factory=dict)
    mirrors: dict[int, MirrorRecord] = dataclasses.field(default_factory=dict)
    leases: dict[int, tuple[str, int]] = dataclasses.field(default_factory=dict)
    readings: dict[tuple[int, str, int], tuple[StoredReading, ...]] = dataclasses.field(
        default_factory=dict
    )
    admin_tokens: dict[str, tuple[AdminToken, str]] = dataclasses.field(default_factory=dict)
    sessions: dict[str, Session] = dataclasses.field(default_factory=dict)
    last_seq: int = 0

    def copy(self) -> _State:
        copied = dataclasses.replace(self)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, dict):
                setattr(copied, field.name, dict(value))
        return copied


class _Transaction:
    """The write side: works on the storage's state directly; the storage undoes it on error."""

    def __init__(self, state: _State) -> None:
        self._s = state

    def exclusive(self, operation_id: int) -> None:
        """Already so: one writer at a time."""

    def known_ids(self, operation_id: int, ids: list[str]) -> set[str]:
        return {i for i in ids if (operation_id, i) in self._s.ids}

    def insert_new(
        self, operation_id: int, events: list[UsageEvent], received: int
    ) -> list[UsageEvent]:
        fresh = [e for e in first_copies(events) if (operation_id, e.id) not in self._s.ids]
        for e in fresh:
            self._s.last_seq += 1
            self._s.events[self._s.last_seq] = (operation_id, e, received, None)
            self._s.ids[(operation_id, e.id)] = self._s.last_seq
        return fresh

    def add_subjects(self, operation_id: int, events: list[UsageEvent]) -> dict[MeterKey, int]:
        new: dict[MeterKey, int] = defaultdict(int)
        for e in events:
            if e.subject is None:
                continue
            key = (operation_id, e.product, e.month, e.subject)
            seen = self._s.subjects.get(key, 0)
            self._s.subjects[key] = seen + 1
            new[(e.product, e.month)] += int(seen == 0)
        return dict(new)

    def remove_subject(self, operation_id: int, product: str, month: int, subject: str) -> bool:
        key = (operation_id, product, month, subject)
        if key not in self._s.subjects:
            return False
        self._s.subjects[key] -= 1
        if self._s.subjects[key] <= 0:
            del self._s.subjects[key]
            return True
        return False

    def meters(self, operation_id: int, keys: Iterable[MeterKey]) -> dict[MeterKey, MeterState]:
        found = {}
        for product, month in keys:
            state = self._s.meters.get((operation_id, product, month))
            if state is not None:
                found[(product, month)] = state.copy()
        return found

    def save_meters(self, operation_id: int, states: dict[MeterKey, MeterState]) -> None:
        for (product, month), state in states.items():
            self._s.meters[(operation_id, product, month)] = state.copy()

    def add_day_subjects(
        self, operation_id: int, uses: list[tuple[str, int, str]]
    ) -> dict[DayKey, int]:
        new: dict[DayKey, int] = defaultdict(int)
        for product, day, subject in uses:
            key = (operation_id, product, day, subject)
            seen = self._s.day_subjects.get(key, 0)
            self._s.day_subjects[key] = seen + 1
            new[(product, day)] += int(seen == 0)
        return dict(new)

    def remove_day_subject(self, operation_id: int, product: str, day: int, subject: str) -> bool:
        key = (operation_id, product, day, subject)
        if key not in self._s.day_subjects:
            return False
        self._s.day_subjects[key] -= 1
        if self._s.day_subjects[key] <= 0:
            del self._s.day_subjects[key]
            return True
        return False

    def day_meters(self, operation_id: int, keys: Iterable[DayKey]) -> dict[DayKey, MeterState]:
        found = {}
        for product, day in keys:
            state = self._s.day_meters.get((operation_id, product, day))
            if state is not None:
                found[(product, day)] = state.copy()
        return found

    def save_day_meters(self, operation_id: int, states: dict[DayKey, MeterState]) -> None:
        for (product, day), state in states.items():
            self._s.day_meters[(operation_id, product, day)] = state.copy()

    def event_for_void(self, operation_id: int, event_id: str) -> StoredEvent | None:
        seq = self._s.ids.get((operation_id, event_id))
        return None if seq is None else _stored(seq, self._s.events[seq])

    def mark_voided(self, operation_id: int, seq: int, when: int) -> None:
        owner, event, received, _ = self._s.events[seq]
        if owner == operation_id:
            self._s.events[seq] = (owner, event, received, when)

    def month_events(
        self, operation_id: int, product: str, month: int, start: int, end: int
    ) -> list[UsageEvent]:
        return [
            e._replace(month=month)
            for _, (owner, e, _, voided) in sorted(self._s.events.items())
            if owner == operation_id
            and e.product == product
            and start <= e.time < end
            and voided is None
        ]

    def closed_months(self, operation_id: int) -> set[int]:
        return {month for owner, month in self._s.closed if owner == operation_id}

    def first_month(self, operation_id: int) -> int | None:
        return min((m for owner, _, m in self._s.meters if owner == operation_id), default=None)

    def freeze(self, operation_id: int, month: int, totals: dict[str, int], when: int) -> None:
        if (operation_id, month) in self._s.closed:
            raise ValueError(f"month {month} is already closed")
        self._s.closed[(operation_id, month)] = dict(totals)

    def create_operation(
        self,
        name: str,
        server: str,
        timezone: str,
        licenses: int,
        created: int,
        currency: str = "USD",
    ) -> Operation:
        ops = self._s.operations
        if any(o.name == name and o.server == server for o in ops.values()):
            raise ValueError(f"operation {name!r} already exists on server {server}")
        op = Operation(len(ops) + 1, name, server, timezone, licenses, created, currency)
        ops[op.id] = op
        return op

    def update_operation(
        self, operation_id: int, licenses: int | None, currency: str | None
    ) -> Operation | None:
        op = self._s.operations.get(operation_id)
        if op is None:
            return None
        op = dataclasses.replace(
            op,
            licenses=op.licenses if licenses is None else licenses,
            currency=op.currency if currency is None else currency,
        )
        self._s.operations[operation_id] = op
        return op

    def create_token(self, token: Token, secret_hash: str) -> None:
        if token.id in self._s.tokens or token.operation_id not in self._s.operations:
            raise ValueError(f"token {token.id!r} can't be stored")
        self._s.tokens[token.id] = (token, secret_hash)

    def revoke_token(self, token_id: str, when: int) -> int | None:
        found = self._s.tokens.get(token_id)
        if found is None or found[0].revoked is not None:
            return None
        self._s.tokens[token_id] = (dataclasses.replace(found[0], revoked=when), found[1])
        self._end_sessions(token_id)
        return found[0].operation_id

    def create_admin_token(self, token: AdminToken, secret_hash: str) -> None:
        if token.id in self._s.admin_tokens:
            raise ValueError(f"admin token {token.id!r} can't be stored")
        self._s.admin_tokens[token.id] = (token, secret_hash)

    def revoke_admin_token(self, token_id: str, when: int) -> bool:
        found = self._s.admin_tokens.get(token_id)
        if found is None or found[0].revoked is not None:
            return False
        self._s.admin_tokens[token_id] = (dataclasses.replace(found[0], revoked=when), found[1])
        self._end_sessions(token_id)
        return True

    def _end_sessions(self, token_id: str) -> None:
        for key, session in list(self._s.sessions.items()):
            if session.token_id == token_id:
                del self._s.sessions[key]

    def set_setting(self, name: str, value: str | None) -> None:
        if value is None:
            self._s.settings.pop(name, None)
        else:
            self._s.settings[name] = value

    def append_audit(self, entry: NewEntry) -> None:
        seq = len(self._s.audit) + 1
        self._s.audit[seq] = AuditEntry(
            seq, entry.time, entry.actor, entry.action, entry.operation_id, entry.details
        )

    def store_statement(self, operation_id: int, month: int, body: bytes) -> None:
        if (operation_id, month) in self._s.statements:
            raise ValueError(f"month {month} already has a final statement")
        self._s.statements[(operation_id, month)] = bytes(body)

    def set_price(self, operation_id: int | None, price: Price) -> None:
        self._s.prices[(operation_id or 0, price.product, price.currency)] = price

    def delete_price(self, operation_id: int | None, product: str, currency: str) -> bool:
        return self._s.prices.pop((operation_id or 0, product, currency), None) is not None

    # -- alerts -------------------------------------------------------------------------------

    def create_alert(self, alert: Alert) -> int:
        alert_id = max(self._s.alerts, default=0) + 1
        self._s.alerts[alert_id] = dataclasses.replace(alert, id=alert_id)
        return alert_id

    def delete_alert(self, alert_id: int, when: int) -> Alert | None:
        found = self._s.alerts.get(alert_id)
        if found is None or found.deleted is not None:
            return None
        self._s.alerts[alert_id] = dataclasses.replace(found, deleted=when)
        return found

    def armed_alerts(self, operation_id: int, month: int) -> list[Armed]:
        return [
            Armed(a.id, a.product, a.on, a.threshold, a.payload)
            for a in sorted(self._s.alerts.values(), key=lambda a: a.id)
            if a.operation_id == operation_id
            and a.deleted is None
            and a.on is not On.STALE
            and (a.id, month) not in self._s.firings
        ]

    def record_firing(self, alert_id: int, month: int, when: int, value: str) -> bool:
        if (alert_id, month) in self._s.firings:
            return False
        self._s.firings[(alert_id, month)] = (when, value)
        return True

    def record_stale_firing(self, alert_id: int, episode: int, when: int) -> bool:
        if (alert_id, episode) in self._s.stale_firings:
            return False
        self._s.stale_firings[(alert_id, episode)] = when
        return True

    def enqueue_delivery(
        self, alert_id: int, operation_id: int, month: int, body: bytes, when: int
    ) -> int:
        delivery_id = max(self._s.deliveries, default=0) + 1
        row = Delivery(delivery_id, alert_id, operation_id, month, "pending", 0, when, when)
        self._s.deliveries[delivery_id] = _Delivery(row, bytes(body))
        return delivery_id

    def level_before(self, operation_id: int, product: str, month: int) -> int | None:
        before = [
            (m, state)
            for (owner, api, m), state in self._s.meters.items()
            if owner == operation_id and api == product and m < month and state.last_time
        ]
        return max(before, key=lambda found: found[0])[1].last_value if before else None

    def prices_now(self, operation_id: int, currency: str) -> dict[str, Price]:
        return _prices_in(self._s.prices, operation_id, currency)

    def record_attempt(
        self, delivery_id: int, owner: str, attempt: DeliveryAttempt, outcome: Outcome
    ) -> None:
        self._s.attempts[len(self._s.attempts) + 1] = (delivery_id, attempt)
        found = self._s.deliveries[delivery_id]
        if found.row.state != "pending":
            return
        row = dataclasses.replace(
            found.row,
            state=outcome.state,
            attempts=found.row.attempts + 1,
            next_attempt=outcome.next_attempt or found.row.next_attempt,
        )
        first = found.first_attempt if found.first_attempt is not None else attempt.time
        self._s.deliveries[delivery_id] = _Delivery(row, found.body, first)

    def create_mirror(self, record: MirrorRecord) -> None:
        op = self._s.operations[record.operation_id]
        if record.operation_id in self._s.mirrors:
            raise ValueError("already a mirror")
        self._s.mirrors[record.operation_id] = record
        self._s.operations[op.id] = dataclasses.replace(op, mirror=True)

    def update_mirror(self, operation_id: int, options: MirrorOptions, sealed: str | None) -> bool:
        found = self._s.mirrors.get(operation_id)
        if found is None:
            return False
        self._s.mirrors[operation_id] = dataclasses.replace(
            found,
            options=options,
            sealed_token=sealed or found.sealed_token,
            state=dataclasses.replace(found.state, next_due=0),
        )
        return True

    def last_readings(self, operation_id: int, keys: Iterable[MeterKey]) -> dict[MeterKey, int]:
        found = {}
        for product, month in keys:
            kept = self._s.readings.get((operation_id, product, month))
            if kept:
                found[(product, month)] = kept[-1].figure
        return found

    def store_readings(self, operation_id: int, readings: list[Reading]) -> int:
        new = 0
        for r in readings:
            key = (operation_id, r.product, r.month)
            kept = self._s.readings.get(key, ())
            if kept and kept[-1].figure == r.figure:
                last = kept[-1]
                moved = dataclasses.replace(last, last_seen=max(last.last_seen, r.seen))
                self._s.readings[key] = (*kept[:-1], moved)
                continue
            self._s.readings[key] = (
                *kept,
                StoredReading(r.product, r.month, r.figure, r.seen, r.seen),
            )
            new += 1
        return new

    def finish_sweep(self, operation_id: int, owner: str, state: SyncState) -> bool:
        lease = self._s.leases.get(operation_id)
        if lease is None or lease[0] != owner:
            return False
        del self._s.leases[operation_id]
        found = self._s.mirrors[operation_id]
        self._s.mirrors[operation_id] = dataclasses.replace(found, state=state)
        return True


def _stored(seq: int, row: tuple[int, UsageEvent, int, int | None]) -> StoredEvent:
    _, e, received, voided = row
    return StoredEvent(seq, e.id, e.product, e.time, e.quantity, e.subject, received, voided)


class MemoryDatabase:
    """The storage ports over dictionaries. Thread-safe: one lock around every call."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()
        self._version = 0
        self._deployment = uuid.uuid4().hex
        self._migrated = False

    # -- schema (nothing to migrate: the fake is always at the current version) ---------------

    def migrate(self) -> int:
        ran = 0 if self._migrated else schema.LATEST
        self._migrated = True
        return ran

    def schema_version(self) -> int:
        return schema.LATEST if self._migrated else 0

    def check_schema(self) -> None:
        schema.check(self.schema_version())

    def close(self) -> None:
        """Nothing to let go of; the data stays for other handles on it."""

    # -- writes -------------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[_Transaction]:
        with self._lock:
            before = self._state.copy()
            try:
                yield _Transaction(self._state)
            except BaseException:
                self._state = before
                raise
            self._version += 1

    # -- mirrors ------------------------------------------------------------------------------

    def mirrors(self) -> list[MirrorRecord]:
        with self._lock:
            return [self.mirror(i) for i in sorted(self._state.mirrors)]  # type: ignore[misc]

    def mirror(self, operation_id: int) -> MirrorRecord | None:
        with self._lock:
            found = self._state.mirrors.get(operation_id)
            lease = self._state.leases.get(operation_id)
            if found is None:
                return None
            return dataclasses.replace(found, lease_owner=lease[0] if lease else None)

    def due_mirrors(self, now: int, limit: int) -> list[int]:
        with self._lock:
            due = [
                (rec.state.next_due, i)
                for i, rec in self._state.mirrors.items()
                if rec.state.next_due <= now and self._free(i, now)
            ]
            return [i for _, i in sorted(due)[:limit]]

    def _free(self, operation_id: int, now: int) -> bool:
        lease = self._state.leases.get(operation_id)
        return lease is None or lease[1] < now

    def claim_mirror(self, operation_id: int, owner: str, now: int, until: int) -> bool:
        with self._lock:
            rec = self._state.mirrors.get(operation_id)
            if rec is None or rec.state.next_due > now or not self._free(operation_id, now):
                return False
            self._state.leases[operation_id] = (owner, until)
            return True

    def renew_lease(self, operation_id: int, owner: str, until: int) -> bool:
        with self._lock:
            lease = self._state.leases.get(operation_id)
            if lease is None or lease[0] != owner:
                return False
            self._state.leases[operation_id] = (owner, until)
            return True

    def release_lease(self, operation_id: int, owner: str) -> None:
        with self._lock:
            lease = self._state.leases.get(operation_id)
            if lease is not None and lease[0] == owner:
                del self._state.leases[operation_id]

    def readings(self, operation_id: int, first_month: int, last_month: int) -> list[StoredReading]:
        with self._lock:
            found = [
                r
                for (op, _, month), kept in self._state.readings.items()
                if op == operation_id and first_month <= month <= last_month
                for r in kept
            ]
            return sorted(found, key=lambda r: (r.product, r.month, r.first_seen))

    # -- operations and tokens ----------------------------------------------------------------

    def operations(self) -> list[Operation]:
        with self._lock:
            return sorted(self._state.operations.values(), key=lambda o: (o.server, o.name))

    def operation(self, operation_id: int) -> Operation | None:
        with self._lock:
            return self._state.operations.get(operation_id)

    def token_by_hash(self, secret_hash: str) -> tuple[Token, str] | None:
        with self._lock:
            for token, stored in self._state.tokens.values():
                if stored == secret_hash:
                    return token, stored
            return None

    def tokens(self, operation_id: int | None) -> list[Token]:
        with self._lock:
            found = [
                t
                for t, _ in self._state.tokens.values()
                if operation_id is None or t.operation_id == operation_id
            ]
        return sorted(found, key=lambda t: (t.created, t.id))

    def admin_token_by_hash(self, secret_hash: str) -> tuple[AdminToken, str] | None:
        with self._lock:
            for token, stored in self._state.admin_tokens.values():
                if stored == secret_hash:
                    return token, stored
            return None

    def admin_tokens(self) -> list[AdminToken]:
        with self._lock:
            found = [t for t, _ in self._state.admin_tokens.values()]
        return sorted(found, key=lambda t: (t.created, t.id))

    # -- dashboard sessions (each change commits at once) ---------------------------------------

    def create_session(self, secret_hash: str, session: Session) -> None:
        with self._lock:
            self._state.sessions[secret_hash] = session

    def session(self, secret_hash: str) -> Session | None:
        with self._lock:
            return self._state.sessions.get(secret_hash)

    def touch_session(self, secret_hash: str, when: int) -> None:
        with self._lock:
            found = self._state.sessions.get(secret_hash)
            if found is not None:
                self._state.sessions[secret_hash] = dataclasses.replace(found, last_seen=when)

    def admin_token_used(self, token_id: str, when: int) -> None:
        with self._lock:
            found = self._state.admin_tokens.get(token_id)
            if found is not None and (found[0].last_used or 0) < when:
                token = dataclasses.replace(found[0], last_used=when)
                self._state.admin_tokens[token_id] = (token, found[1])

    def end_session(self, secret_hash: str) -> None:
        with self._lock:
            self._state.sessions.pop(secret_hash, None)

    # -- request counters and settings --------------------------------------------------------

    def save_request_counts(
        self, day_counts: dict[tuple[str, str], tuple[int, int]], last_used: dict[str, int]
    ) -> None:
        with self._lock:
            self._state.counts.update(day_counts)
            for token_id, when in last_used.items():
                found = self._state.tokens.get(token_id)
                if found is not None:
                    used = max(found[0].last_used or 0, when)
                    self._state.tokens[token_id] = (
                        dataclasses.replace(found[0], last_used=used),
                        found[1],
                    )

    def request_counts(self, day: str, operation_id: int | None) -> dict[str, int]:
        with self._lock:
            return {
                token_id: n
                for (token_id, d), (op, n) in self._state.counts.items()
                if d == day and (operation_id is None or op == operation_id)
            }

    def setting(self, name: str) -> str | None:
        with self._lock:
            return self._state.settings.get(name)

    def deployment_id(self) -> str:
        return self._deployment

    def final_statement(self, operation_id: int, month: int) -> bytes | None:
        with self._lock:
            return self._state.statements.get((operation_id, month))

    def every_month_meters(self, month: int, levels: tuple[str, ...]) -> dict[int, MonthMeters]:
        with self._lock:
            products = tuple(sorted({api for (_, api, _) in self._state.meters}))
            found = {}
            for op in self._state.operations:
                meters = self.month_meters(op, month, products, levels)
                if meters.frozen is not None or meters.states or meters.carried:
                    found[op] = meters
            return found

    def final_statements(self, month: int) -> dict[int, bytes]:
        with self._lock:
            return {op: body for (op, m), body in self._state.statements.items() if m == month}

    # -- alerts and deliveries ----------------------------------------------------------------

    def stale_watches(self) -> list[StaleWatch]:
        with self._lock:
            fired: dict[int, int] = {}
            for alert_id, episode in self._state.stale_firings:
                fired[alert_id] = max(episode, fired.get(alert_id, episode))
            return [
                StaleWatch(a.id, a.operation_id, a.payload, fired.get(a.id))
                for _, a in sorted(self._state.alerts.items())
                if a.deleted is None and a.on is On.STALE
            ]

    def alerts(self, operation_id: int | None) -> list[Alert]:
        with self._lock:
            return [
                a
                for _, a in sorted(self._state.alerts.items())
                if a.deleted is None and operation_id in (None, a.operation_id)
            ]

    def alert(self, alert_id: int) -> Alert | None:
        with self._lock:
            found = self._state.alerts.get(alert_id)
            return found if found is not None and found.deleted is None else None

    def _attempts_of(self, delivery_id: int) -> list[DeliveryAttempt]:
        return [a for d, a in self._state.attempts.values() if d == delivery_id]

    def deliveries(
        self, operation_id: int | None, alert_id: int | None, limit: int
    ) -> list[Delivery]:
        with self._lock:
            found = []
            for _, d in sorted(self._state.deliveries.items(), reverse=True):
                if operation_id in (None, d.row.operation_id) and alert_id in (
                    None,
                    d.row.alert_id,
                ):
                    tried = self._attempts_of(d.row.id)
                    found.append(
                        dataclasses.replace(d.row, last_attempt=tried[-1] if tried else None)
                    )
            return found[:limit]

    def delivery_attempts(
        self, operation_id: int | None, alert_id: int | None, limit: int
    ) -> list[tuple[Delivery, DeliveryAttempt]]:
        with self._lock:
            found = []
            for _, (delivery_id, attempt) in sorted(self._state.attempts.items(), reverse=True):
                row = self._state.deliveries[delivery_id].row
                if operation_id in (None, row.operation_id) and alert_id in (None, row.alert_id):
                    found.append((row, attempt))
            return found[:limit]

    def next_due(self) -> int | None:
        with self._lock:
            due = [
                d.row.next_attempt
                for d in self._state.deliveries.values()
                if d.row.state == "pending"
            ]
            return min(due, default=None)

    def claim_due(self, owner: str, now: int, lease_until: int, limit: int) -> list[Claimed]:
        with self._lock:
            due = sorted(
                (
                    d
                    for d in self._state.deliveries.values()
                    if d.row.state == "pending"
                    and d.row.next_attempt <= now
                    and (d.claimed_until is None or d.claimed_until < now)
                ),
                key=lambda d: d.row.next_attempt,
            )[:limit]
            found = []
            for d in due:
                self._state.deliveries[d.row.id] = dataclasses.replace(
                    d, claimed_by=owner, claimed_until=lease_until
                )
                alert = self._state.alerts[d.row.alert_id]
                found.append(
                    Claimed(
                        d.row.id,
                        alert.id,
                        d.body,
                        alert.url,
                        alert.secret,
                        d.row.attempts,
                        d.first_attempt,
                    )
                )
            return found

    # -- prices -------------------------------------------------------------------------------

    def all_prices(self) -> list[tuple[int | None, Price]]:
        with self._lock:
            return [(scope or None, p) for (scope, _, _), p in sorted(self._state.prices.items())]

    def prices_for(self, operation_id: int, currency: str) -> dict[str, Price]:
        with self._lock:
            return _prices_in(self._state.prices, operation_id, currency)

    # -- figures and events -------------------------------------------------------------------

    def version(self) -> int:
        return self._version

    def refresh(self) -> None:
        """Nothing to do: the version is always current here."""

    def month_meters(
        self, operation_id: int, month: int, products: tuple[str, ...], levels: tuple[str, ...]
    ) -> MonthMeters:
        with self._lock:
            frozen = self.frozen_figures(operation_id, month)
            if frozen is not None:
                return MonthMeters(frozen, {}, {})
            states = self.meter_states(operation_id, month, list(products))
            return MonthMeters(None, states, self.carried_levels(operation_id, month, list(levels)))

    def meter_states(
        self, operation_id: int, month: int, products: list[str]
    ) -> dict[str, MeterState]:
        with self._lock:
            found = {}
            for api in products:
                state = self._state.meters.get((operation_id, api, month))
                if state is not None:
                    found[api] = state.copy()
            return found

    def carried_levels(self, operation_id: int, month: int, products: list[str]) -> dict[str, int]:
        wanted = set(products)
        latest: dict[str, tuple[int, int]] = {}
        with self._lock:
            for (owner, api, m), state in self._state.meters.items():
                if owner != operation_id or api not in wanted or m >= month:
                    continue
                if state.last_time is not None and (api not in latest or latest[api][0] < m):
                    latest[api] = (m, state.last_value)
        return {api: value for api, (_, value) in latest.items()}

    def day_states(
        self,
        operation_id: int,
        first_day: int,
        last_day: int,
        products: tuple[str, ...],
        levels: tuple[str, ...],
    ) -> DayMeters:
        states: dict[DayKey, MeterState] = {}
        latest: dict[str, tuple[int, int]] = {}
        with self._lock:
            for (owner, api, day), state in self._state.day_meters.items():
                if owner != operation_id:
                    continue
                if api in products and first_day <= day <= last_day:
                    states[(api, day)] = state.copy()
                elif (
                    api in levels
                    and day < first_day
                    and state.last_time is not None
                    and (api not in latest or latest[api][0] < day)
                ):
                    latest[api] = (day, state.last_value)
        return DayMeters(states, {api: value for api, (_, value) in latest.items()})

    def frozen_figures(self, operation_id: int, month: int) -> dict[str, int] | None:
        with self._lock:
            frozen = self._state.closed.get((operation_id, month))
            return None if frozen is None else dict(frozen)

    def first_month(self, operation_id: int) -> int | None:
        with self._lock:
            return _Transaction(self._state).first_month(operation_id)

    def audit_entries(
        self,
        operation_id: int | None,
        start: int | None,
        end: int | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> list[AuditEntry]:
        with self._lock:
            found = [
                e
                for e in self._state.audit.values()
                if (operation_id is None or e.operation_id == operation_id)
                and (start is None or e.time >= start)
                and (end is None or e.time < end)
                and (after is None or (e.time, e.seq) > after)
            ]
        found.sort(key=lambda e: (e.time, e.seq))
        return found[:limit]

    def events(
        self,
        operation_id: int,
        start: int,
        end: int,
        product: str | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> Iterator[StoredEvent]:
        with self._lock:
            rows = [
                _stored(seq, row)
                for seq, row in self._state.events.items()
                if row[0] == operation_id
                and start <= row[1].time < end
                and (product is None or row[1].product == product)
                and (after is None or (row[1].time, seq) > after)
            ]
        rows.sort(key=lambda e: (e.time, e.seq))
        return iter(rows[:limit])


class FakeSecretBox:
    """Seals by reversing and tagging: enough to prove a service stores the sealed form and
    opens it again, without a key."""

    def seal(self, secret: str) -> str:
        return "sealed:" + secret[::-1]

    def open(self, sealed: str) -> str:
        if not sealed.startswith("sealed:"):
            raise ValueError("not sealed by FakeSecretBox")
        return sealed.removeprefix("sealed:")[::-1]
