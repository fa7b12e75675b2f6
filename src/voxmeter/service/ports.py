"""The interfaces the service layer depends on; adapters implement them."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from voxmeter.domain.alerts import Alert, Armed, Payload
from voxmeter.domain.audit import AuditEntry, NewEntry
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.meters import DayKey, MeterKey, MeterState
from voxmeter.domain.mirrors import MirrorOptions, SyncState
from voxmeter.domain.prices import Price
from voxmeter.domain.readings import Reading
from voxmeter.domain.sessions import Session
from voxmeter.domain.tenancy import AdminToken, Operation, Token


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as listed for reconciliation."""

    seq: int
    id: str
    product: str
    time: int
    quantity: int
    subject: str | None
    received: int
    voided: int | None


@dataclass(frozen=True, slots=True)
class MonthMeters:
    """Everything needed for a month's figures: frozen totals once closed, else live states."""

    frozen: dict[str, int] | None
    states: dict[str, MeterState]
    carried: dict[str, int]


@dataclass(frozen=True, slots=True)
class DayMeters:
    """Everything needed for a run of days' figures, read in one snapshot: the day states of
    the products asked for, and each level's last report before the first day."""

    states: dict[DayKey, MeterState]
    carried: dict[str, int]


METER_CACHE_ENTRIES = 4096
"""Month meters a reader thread keeps for the current storage version, least recently used
first out (a key is an operation, a month and a product set)."""


class EventWrites(Protocol):
    """Storing and voiding events inside a write transaction."""

    def known_ids(self, operation_id: int, ids: list[str]) -> set[str]:
        """Which of these event ids the operation already has."""
        ...

    def insert_new(
        self, operation_id: int, events: list[UsageEvent], received: int
    ) -> list[UsageEvent]:
        """Store the events whose id is new; return those, in order."""
        ...

    def event_for_void(self, operation_id: int, event_id: str) -> StoredEvent | None: ...

    def mark_voided(self, operation_id: int, seq: int, when: int) -> None: ...

    def month_events(
        self, operation_id: int, product: str, month: int, start: int, end: int
    ) -> list[UsageEvent]:
        """The month's non-voided events of one product in arrival order (to refold a level)."""
        ...


class MeterWrites(Protocol):
    """Reading and saving meter states (and unique subjects) inside a write transaction."""

    def add_subjects(self, operation_id: int, events: list[UsageEvent]) -> dict[MeterKey, int]:
        """Count subjects per (product, month); return how many are new to each month."""
        ...

    def remove_subject(self, operation_id: int, product: str, month: int, subject: str) -> bool:
        """Drop one use of a subject; True when it no longer occurs in the month."""
        ...

    def meters(self, operation_id: int, keys: Iterable[MeterKey]) -> dict[MeterKey, MeterState]: ...

    def save_meters(self, operation_id: int, states: dict[MeterKey, MeterState]) -> None: ...


class DayMeterWrites(Protocol):
    """The per-day meters (and a day's unique subjects) inside a write transaction: kept beside
    the month meters, by the same rules, keyed by (product, local day)."""

    def add_day_subjects(
        self, operation_id: int, uses: list[tuple[str, int, str]]
    ) -> dict[DayKey, int]:
        """Count (product, day, subject) uses; return how many subjects are new to each day."""
        ...

    def remove_day_subject(self, operation_id: int, product: str, day: int, subject: str) -> bool:
        """Drop one use of a subject; True when it no longer occurs on the day."""
        ...

    def day_meters(self, operation_id: int, keys: Iterable[DayKey]) -> dict[DayKey, MeterState]: ...

    def save_day_meters(self, operation_id: int, states: dict[DayKey, MeterState]) -> None: ...


class MonthWrites(Protocol):
    """Closed months inside a write transaction."""

    def closed_months(self, operation_id: int) -> set[int]: ...

    def first_month(self, operation_id: int) -> int | None:
        """The earliest month holding any of the operation's events, as this transaction sees
        it (after `exclusive`: every batch committed before it, none after)."""
        ...

    def freeze(self, operation_id: int, month: int, totals: dict[str, int], when: int) -> None:
        """Record a month as closed with its final figures."""
        ...


class TenancyWrites(Protocol):
    """Operations and tokens changed inside a write transaction, so that each change and its
    audit entry commit together."""

    def create_operation(
        self,
        name: str,
        server: str,
        timezone: str,
        licenses: int,
        created: int,
        currency: str = "USD",
    ) -> Operation:
        """Raises ValueError when the server already has an operation of that name."""
        ...

    def update_operation(
        self, operation_id: int, licenses: int | None, currency: str | None
    ) -> Operation | None:
        """Change what is given (None keeps it); None if there is no such operation."""
        ...

    def create_token(self, token: Token, secret_hash: str) -> None: ...

    def revoke_token(self, token_id: str, when: int) -> int | None:
        """Revoke an active token; its operation's id, or None when no active token has it."""
        ...


class AdminTokenWrites(Protocol):
    """Deployment-wide admin tokens changed inside a write transaction, beside their audit
    entry."""

    def create_admin_token(self, token: AdminToken, secret_hash: str) -> None: ...

    def revoke_admin_token(self, token_id: str, when: int) -> bool:
        """Revoke an active admin token and end its dashboard sessions; False when no active
        admin token has that id."""
        ...


class SettingWrites(Protocol):
    """Deployment-wide settings (the maintenance flag) changed inside a write transaction."""

    def set_setting(self, name: str, value: str | None) -> None: ...


class PriceWrites(Protocol):
    """Prices changed inside a write transaction, beside their audit entry."""

    def set_price(self, operation_id: int | None, price: Price) -> None:
        """Store the price, replacing any of the same scope, product and currency."""
        ...

    def delete_price(self, operation_id: int | None, product: str, currency: str) -> bool:
        """Remove a price; False when there was none."""
        ...


class StatementWrites(Protocol):
    """Final statements inside the write transaction that closes their month."""

    def store_statement(self, operation_id: int, month: int, body: bytes) -> None:
        """Keep a month's final statement, encoded; it is never replaced."""
        ...


class AuditWrites(Protocol):
    """Appending to the audit log inside the write transaction of the change it records."""

    def append_audit(self, entry: NewEntry) -> None: ...


class AlertWrites(Protocol):
    """Alerts, their firings and the delivery outbox inside a write transaction: a firing and
    its delivery commit with the change of usage that caused them, or not at all."""

    def create_alert(self, alert: Alert) -> int:
        """Store a new alert (its id is ignored); return the id it got."""
        ...

    def delete_alert(self, alert_id: int, when: int) -> Alert | None:
        """Mark an alert deleted; the alert as it was, or None when there is no live one."""
        ...

    def armed_alerts(self, operation_id: int, month: int) -> list[Armed]:
        """The operation's live alerts on usage (not on staleness) that have not fired for
        `month`."""
        ...

    def record_firing(self, alert_id: int, month: int, when: int, value: str) -> bool:
        """Record that the alert fired for the month; False when it already had (the firing
        key is (alert, month), so this holds across transactions and processes)."""
        ...

    def record_stale_firing(self, alert_id: int, episode: int, when: int) -> bool:
        """Record that a staleness alert fired for a staleness episode (named by the instant
        staleness is counted from); False when it already had (the firing key is (alert,
        episode), so this holds across transactions and processes)."""
        ...

    def enqueue_delivery(
        self, alert_id: int, operation_id: int, month: int, body: bytes, when: int
    ) -> int:
        """Add a pending delivery, due at once; return its id."""
        ...

    def level_before(self, operation_id: int, product: str, month: int) -> int | None:
        """The last level reported for a level product before the month, if any."""
        ...

    def prices_now(self, operation_id: int, currency: str) -> dict[str, Price]:
        """The prices in effect for the operation in a currency (as `Prices.prices_for`)."""
        ...

    def record_attempt(
        self, delivery_id: int, owner: str, attempt: DeliveryAttempt, outcome: Outcome
    ) -> None:
        """Log one attempt and move the delivery on: delivered, failed, or pending until
        `outcome.next_attempt`; the claim of `owner` is let go."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    time: int
    status: int | None
    """The receiver's HTTP status, or None when no answer came."""
    error: str | None
    duration: int
    """Microseconds."""


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str
    next_attempt: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery as listed, with its alert's operation."""

    id: int
    alert_id: int
    operation_id: int
    month: int
    state: str
    attempts: int
    created: int
    next_attempt: int
    last_attempt: DeliveryAttempt | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for sending: its body and where and how to send it."""

    id: int
    alert_id: int
    body: bytes
    url: str
    secret: str
    """Sealed."""
    attempts: int
    first_attempt: int | None


@dataclass(frozen=True, slots=True)
class StaleWatch:
    """A live staleness alert, with the latest staleness episode it fired for (None: never)."""

    alert_id: int
    operation_id: int
    payload: Payload
    fired_through: int | None


class AlertReads(Protocol):
    """Alerts, deliveries and attempts as committed."""

    def stale_watches(self) -> list[StaleWatch]:
        """Every live staleness alert, by id."""
        ...

    def alerts(self, operation_id: int | None) -> list[Alert]:
        """Live alerts, of one operation or all, oldest first."""
        ...

    def alert(self, alert_id: int) -> Alert | None:
        """A live alert."""
        ...

    def deliveries(
        self, operation_id: int | None, alert_id: int | None, limit: int
    ) -> list[Delivery]:
        """Deliveries, newest first, each with its last attempt."""
        ...

    def delivery_attempts(
        self, operation_id: int | None, alert_id: int | None, limit: int
    ) -> list[tuple[Delivery, DeliveryAttempt]]:
        """Every attempt, newest first, with its delivery."""
        ...


class Outbox(Protocol):
    """The pending deliveries, claimed by one sender at a time for a lease."""

    def next_due(self) -> int | None:
        """When the earliest pending delivery is due (microseconds), if any."""
        ...

    def claim_due(self, owner: str, now: int, lease_until: int, limit: int) -> list[Claimed]:
        """Claim up to `limit` due deliveries nobody holds (or whose lease ran out)."""
        ...


@dataclass(frozen=True, slots=True)
class MirrorRecord:
    """A mirror as stored: its options, its sealed upstream token, where its sweeps stand and
    which process holds its sweep lease (None: no one)."""

    operation_id: int
    options: MirrorOptions
    sealed_token: str
    state: SyncState
    lease_owner: str | None = None


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A distinct figure of a product's month and the span it was seen for."""

    product: str
    month: int
    figure: int
    first_seen: int
    last_seen: int


class MirrorWrites(Protocol):
    """Mirrors and their readings inside a write transaction (beside the meters the readings
    project into, and the audit entry of a change)."""

    def create_mirror(self, record: MirrorRecord) -> None:
        """Make the operation a mirror (its ingest and voids are refused from then on)."""
        ...

    def update_mirror(self, operation_id: int, options: MirrorOptions, sealed: str | None) -> bool:
        """Change the options (and the token when `sealed` is given); the next sweep is due
        at once. False when the operation is no mirror."""
        ...

    def last_readings(self, operation_id: int, keys: Iterable[MeterKey]) -> dict[MeterKey, int]:
        """The latest figure stored for each (product, month) that has one."""
        ...

    def store_readings(self, operation_id: int, readings: list[Reading]) -> int:
        """Store readings idempotently: a figure equal to the latest of its (product, month)
        only moves that reading's last-seen time. Returns how many were new figures."""
        ...

    def finish_sweep(self, operation_id: int, owner: str, state: SyncState) -> bool:
        """Save the sweep's outcome and let go of the lease; False (nothing saved) when
        `owner` no longer holds it."""
        ...


class MirrorReads(Protocol):
    """Mirrors, their sweep leases and readings, as committed."""

    def mirrors(self) -> list[MirrorRecord]: ...

    def mirror(self, operation_id: int) -> MirrorRecord | None: ...

    def due_mirrors(self, now: int, limit: int) -> list[int]:
        """Mirrors whose next sweep is due and that no live lease holds, most overdue first."""
        ...

    def claim_mirror(self, operation_id: int, owner: str, now: int, until: int) -> bool:
        """Take the sweep lease of a due mirror until `until`, atomically across processes;
        False when it is not due or another live lease holds it."""
        ...

    def renew_lease(self, operation_id: int, owner: str, until: int) -> bool:
        """Extend a held lease; False when it was lost (expired and taken)."""
        ...

    def release_lease(self, operation_id: int, owner: str) -> None: ...

    def readings(self, operation_id: int, first_month: int, last_month: int) -> list[StoredReading]:
        """Readings of the months in [first_month, last_month], by product, month and time."""
        ...


class WriteTransaction(
    EventWrites,
    MeterWrites,
    DayMeterWrites,
    MonthWrites,
    StatementWrites,
    TenancyWrites,
    SettingWrites,
    PriceWrites,
    AuditWrites,
    AlertWrites,
    MirrorWrites,
    AdminTokenWrites,
    Protocol,
):
    """One atomic unit of writing: everything in it commits together or not at all.

    Concurrent transactions of one operation may store events side by side; meter updates are
    serialized by the storage, and a transaction that calls `exclusive` first has the operation
    to itself (closing months and voiding, which must not interleave with ingest)."""

    def exclusive(self, operation_id: int) -> None:
        """No other transaction of this operation runs until this one ends. Call it first."""
        ...


class Writer(Protocol):
    """Where every change to events, meters and months goes through."""

    def write(self) -> AbstractContextManager[WriteTransaction]: ...


class Tenancy(Protocol):
    """Operations and their API tokens, as committed (changes go through `Writer.write`)."""

    def operations(self) -> list[Operation]: ...

    def operation(self, operation_id: int) -> Operation | None: ...

    def token_by_hash(self, secret_hash: str) -> tuple[Token, str] | None:
        """The token whose secret hashes to this value, with the stored hash for a final check."""
        ...

    def tokens(self, operation_id: int | None) -> list[Token]: ...


class AdminTokens(Protocol):
    """Deployment-wide admin tokens as committed: they open the dashboard's overview of every
    operation and nothing else (no API request looks them up)."""

    def admin_token_by_hash(self, secret_hash: str) -> tuple[AdminToken, str] | None:
        """The admin token whose secret hashes to this value, with the stored hash."""
        ...

    def admin_tokens(self) -> list[AdminToken]: ...


class DashboardSessions(Protocol):
    """Dashboard sign-in sessions, keyed by the hash of their secret; each call commits at
    once. Revoking a token ends its sessions (in the revoking transaction)."""

    def create_session(self, secret_hash: str, session: Session) -> None: ...

    def session(self, secret_hash: str) -> Session | None: ...

    def touch_session(self, secret_hash: str, when: int) -> None: ...

    def admin_token_used(self, token_id: str, when: int) -> None:
        """Record an admin token's use (its sign-in, and its session's activity); never moves
        its last use back."""
        ...

    def end_session(self, secret_hash: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AlertSummary:
    """An alert as the dashboard lists it, with its last delivery (never its secret)."""

    id: str
    target: str
    """A product's `api`, `total`, or `mirror` for a staleness alert."""
    on: str
    threshold: str
    """A plain decimal; "" for a staleness alert (it has none)."""
    last_delivery: int | None
    """When its last delivery was attempted (microseconds), None before any."""
    last_status: str
    """That attempt's outcome as shown (an HTTP status, an error, `pending`), "" before any."""


class DashboardNotices(Protocol):
    """What the dashboard shows beside the figures: an operation's alerts with their last
    deliveries, when a mirror operation was last synced (None: not a mirror, or never), and
    whether a mirror is stale at `now` (as `voxmeter mirror status` says)."""

    def alert_summaries(self, operation_id: int) -> list[AlertSummary]: ...

    def last_synced(self, operation_id: int) -> int | None: ...

    def is_stale(self, operation_id: int, now: int) -> bool:
        """False for an operation that is not a mirror."""
        ...

    def stale_mirrors(self, now: int) -> set[int]:
        """The ids of the operations that are stale mirrors."""
        ...


class RequestCounters(Protocol):
    """Per-token request counts per day, flushed by the limiter."""

    def save_request_counts(
        self, day_counts: dict[tuple[str, str], tuple[int, int]], last_used: dict[str, int]
    ) -> None:
        """Persist per-token request counts: {(token_id, day): (operation_id, count)}."""
        ...

    def request_counts(self, day: str, operation_id: int | None) -> dict[str, int]:
        """Requests made on a day, per token id."""
        ...


class SettingsStore(Protocol):
    """Named deployment-wide settings (the maintenance flag) and the deployment's id."""

    def setting(self, name: str) -> str | None: ...

    def deployment_id(self) -> str:
        """The random id this database got with its schema: what shared limit state is keyed by."""
        ...


class MeterReads(Protocol):
    """The figures of a month, as committed."""

    def version(self) -> Hashable:
        """Changes whenever a figure or a price may have changed: at once for this process's
        commits, within a millisecond for other processes' (readers cache by it)."""
        ...

    def refresh(self) -> None:
        """Make this thread's next `version()` current, not up to a millisecond old: for a read
        that must see every commit acknowledged before it began."""
        ...

    def month_meters(
        self, operation_id: int, month: int, products: tuple[str, ...], levels: tuple[str, ...]
    ) -> MonthMeters:
        """One consistent read of a month: frozen figures, or meter states of `products` and the
        carried-in level of each of `levels`."""
        ...

    def meter_states(
        self, operation_id: int, month: int, products: list[str]
    ) -> dict[str, MeterState]: ...

    def carried_levels(self, operation_id: int, month: int, products: list[str]) -> dict[str, int]:
        """For each level product: the last level reported before the month, if any."""
        ...


class DayMeterReads(Protocol):
    """The per-day meters, as committed."""

    def day_states(
        self,
        operation_id: int,
        first_day: int,
        last_day: int,
        products: tuple[str, ...],
        levels: tuple[str, ...],
    ) -> DayMeters:
        """One consistent read: the states of `products` from `first_day` to `last_day`
        (date ordinals, both included) and the last level reported before `first_day` of each
        of `levels`."""
        ...


class EventLog(Protocol):
    """Events listed for reconciliation."""

    def events(
        self,
        operation_id: int,
        start: int,
        end: int,
        product: str | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> Iterator[StoredEvent]:
        """Events with `start <= time < end` ordered by (time, seq), after a cursor."""
        ...


class AuditLog(Protocol):
    """The audit log as committed, oldest first."""

    def audit_entries(
        self,
        operation_id: int | None,
        start: int | None,
        end: int | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> list[AuditEntry]:
        """Entries with `start <= time < end` (None: unbounded) of one operation (None: all),
        ordered by (time, seq), after a (time, seq) cursor; at most `limit`."""
        ...


class Prices(Protocol):
    """Prices per product and currency: the deployment's defaults (operation None) and each
    operation's overrides, as committed (changes go through `Writer.write`)."""

    def all_prices(self) -> list[tuple[int | None, Price]]:
        """Every price with its operation (None: a default), defaults first."""
        ...

    def prices_for(self, operation_id: int, currency: str) -> dict[str, Price]:
        """The prices in effect for an operation in a currency, by product: its own where it
        has one, else the default."""
        ...


class Statements(Protocol):
    """Final statements as stored when their month closed."""

    def final_statement(self, operation_id: int, month: int) -> bytes | None:
        """The stored bytes, or None (the month is open, or closed before statements were
        kept)."""
        ...


class BulkReads(Protocol):
    """Every operation's month at once (exporting all statements)."""

    def every_month_meters(self, month: int, levels: tuple[str, ...]) -> dict[int, MonthMeters]:
        """One consistent read of the month for every operation with meters or a frozen month,
        by operation id: as `month_meters` with every product, `levels` carried in."""
        ...

    def final_statements(self, month: int) -> dict[int, bytes]:
        """The month's stored final statements, by operation id."""
        ...


class Months(Protocol):
    """Which months hold events and which are closed."""

    def frozen_figures(self, operation_id: int, month: int) -> dict[str, int] | None:
        """A closed month's final figures, or None while it is open."""
        ...

    def first_month(self, operation_id: int) -> int | None:
        """The earliest month holding any of the operation's events."""
        ...


class SecretSealing(Protocol):
    """Seals the secrets voxmeter must use again later (webhook signing secrets, upstream
    tokens): what is stored reveals nothing without the deployment's key."""

    def seal(self, secret: str) -> str: ...

    def open(self, sealed: str) -> str: ...


class Storage(
    Writer,
    Tenancy,
    RequestCounters,
    SettingsStore,
    MeterReads,
    DayMeterReads,
    EventLog,
    Months,
    AuditLog,
    Prices,
    Statements,
    BulkReads,
    AlertReads,
    Outbox,
    MirrorReads,
    AdminTokens,
    DashboardSessions,
    Protocol,
):
    """Everything voxmeter keeps. Reads are consistent snapshots; writes go through `write()`."""

    def close(self) -> None: ...


class Database(Storage, Protocol):
    """Storage with a versioned schema: what the wiring opens, migrates and checks."""

    def migrate(self) -> int:
        """Bring the schema to the current version; return how many migrations ran."""
        ...

    def schema_version(self) -> int:
        """The schema version found in the database (0 when empty)."""
        ...

    def check_schema(self) -> None:
        """Refuse (SchemaError) a schema other than the one this release uses."""
        ...


class Admission(NamedTuple):
    """The limiter's answer: `ok`, `busy` (too many in flight) or `quota` (day used up).

    `lease` names the in-flight slot an `ok` admission took; it is handed back to `release`.
    A named tuple rather than a frozen dataclass: one is made for every request, and a frozen
    dataclass sets each field through `object.__setattr__`."""

    outcome: str
    token_today: int
    operation_today: int
    lease: str = ""


class Limiter(Protocol):
    """Per-token concurrency and per-operation daily quota, admitted in one step."""

    in_process: bool
    """True when `admit`, `release` and `usage` only touch this process's memory (no I/O), so
    an event loop may call them directly; otherwise they are called from a worker thread."""

    def admit(
        self, token_id: str, operation_id: int, day: str, max_in_flight: int, quota: int
    ) -> Admission:
        """Take an in-flight slot and charge one request, or refuse without doing either."""
        ...

    def release(self, token_id: str, lease: str) -> None:
        """Give back the in-flight slot taken by an `ok` admission."""
        ...

    def usage(self, token_id: str, operation_id: int, day: str) -> tuple[int, int]:
        """(this token's requests, all the operation's requests) on a day."""
        ...

    def flush(self) -> None:
        """Persist counters (a no-op where the state is already shared)."""
        ...

    def close(self) -> None:
        """Let go of connections; called once when the server stops."""
        ...


@dataclass(frozen=True, slots=True)
class LoopAdmission:
    """`Admission` plus the data version it was made at: a reply read after it is at least
    that new. An `ok` admission without a lease was charged without taking a slot, because the
    data version was the one the caller expected (its cached reply is current)."""

    admission: Admission
    version: str


class LoopLimits(Protocol):
    """The shared limiter's admission and release for an event loop: never blocks it, and
    answers `Unavailable` within the limiter's timeout when the shared state cannot be reached."""

    async def admit(
        self,
        token_id: str,
        operation_id: int,
        day: str,
        max_in_flight: int,
        quota: int,
        expected: str = "",
    ) -> LoopAdmission:
        """`Limiter.admit`; with `expected` (a data version) and that still the version, the
        request is charged (busy and quota checked as ever) without taking a slot."""
        ...

    async def release(self, token_id: str, lease: str) -> None:
        """`Limiter.release`; never raises."""
        ...

    async def aclose(self) -> None: ...


class AfterSweep(Protocol):
    """Called after a sweep committed its readings: where alert evaluation and the
    dashboard's "last synced" hook in. Must not raise or block for long."""

    def __call__(self, operation_id: int, state: SyncState, changed: bool) -> None: ...


class Changes(Protocol):
    """Other writers' commits as seen by this process."""

    @property
    def generation(self) -> int | None:
        """Changes after every commit that may change a figure; None while unknown."""
        ...

    async def run(self) -> None:
        """Follow the changes until cancelled."""
        ...
