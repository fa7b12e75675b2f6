"""PostgreSQL storage: any number of `voxmeter serve` processes share one database.

Writers to one operation coordinate through transaction-scoped advisory locks keyed by the
operation id (see `_Transaction`): batches insert their events in parallel, read-merge-save of
the meters is serialized so it is exact across processes, and closing a month or voiding has the
operation to itself; different operations never wait for each other. Commits are
synchronous (`synchronous_commit` is turned back on where the server's default is off), so an
acknowledged batch survives a crash. Every driver failure that means "the database is not there
just now" surfaces as `Unavailable` (HTTP 503), and a broken connection is dropped so the next
call reconnects by itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from voxmeter.adapters.postgres import schema
from voxmeter.adapters.postgres.changes import ChangeListener
from voxmeter.adapters.postgres.days import DayMeterReads, DayMeterWrites
from voxmeter.adapters.postgres.events import EventLog, EventWrites
from voxmeter.adapters.postgres.final_statements import StatementReads, StatementWrites
from voxmeter.adapters.postgres.meters import MeterReads, MeterWrites
from voxmeter.adapters.postgres.months import MonthReads, MonthWrites
from voxmeter.adapters.postgres.pool import UNAVAILABLE, Connection, Pool
from voxmeter.adapters.postgres.products import Products
from voxmeter.adapters.postgres.settings import Counters
from voxmeter.adapters.postgres.statements import EXCLUSIVE, GATE, METER, METERS, SHARED
from voxmeter.adapters.sql.admin_tokens import SqlAdminTokens, SqlAdminTokenWrites
from voxmeter.adapters.sql.alerts import ArmedMemo, SqlAlertReads, SqlAlertWrites
from voxmeter.adapters.sql.audit import SqlAuditLog, SqlAuditWrites
from voxmeter.adapters.sql.dialect import POSTGRES
from voxmeter.adapters.sql.export import SqlBulkReads
from voxmeter.adapters.sql.mirrors import SqlMirrors, SqlMirrorWrites
from voxmeter.adapters.sql.prices import SqlPrices, SqlPriceWrites
from voxmeter.adapters.sql.sessions import SqlDashboardSessions
from voxmeter.adapters.sql.settings import SqlSettingWrites
from voxmeter.adapters.sql.tenancy import SqlTenancy, SqlTenancyWrites
from voxmeter.domain.prices import Price
from voxmeter.errors import Unavailable


@contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    """Driver failures meaning "not reachable / not now" become Unavailable (HTTP 503)."""
    try:
        yield
    except (
        psycopg.OperationalError,  # connection lost or refused, timeouts, deadlock, shutdown
        psycopg.InterfaceError,
        pg_errors.ReadOnlySqlTransaction,  # a standby, e.g. during a failover
    ) as exc:
        raise Unavailable(UNAVAILABLE) from exc


class _Transaction(
    EventWrites,
    MeterWrites,
    DayMeterWrites,
    MonthWrites,
    StatementWrites,
    SqlTenancyWrites,
    SqlSettingWrites,
    SqlPriceWrites,
    SqlAuditWrites,
    SqlAlertWrites,
    SqlMirrorWrites,
    SqlAdminTokenWrites,
):
    """One write transaction. The connection, BEGIN and the operation's locks are taken at the
    first call that names an operation, so a writer waiting for its operation holds nothing.
    Its roles' statements are in events.py, meters.py and months.py; operations, tokens,
    settings and the audit log (adapters/sql) need the transaction but no operation's lock."""

    dialect = POSTGRES
    duplicate = pg_errors.UniqueViolation

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        self._products = storage._products
        self._armed_memo = storage._armed_memo
        self._conn: Connection | None = None
        self._level: dict[int, int] = {}
        self._voidable: dict[int, str] = {}
        self.changed = False

    def set_price(self, operation_id: int | None, price: Price) -> None:
        super().set_price(operation_id, price)
        self.changed = True  # drafts are priced from it: readers' caches must see the change

    def delete_price(self, operation_id: int | None, product: str, currency: str) -> bool:
        deleted = super().delete_price(operation_id, product, currency)
        self.changed |= deleted
        return deleted

    def exclusive(self, operation_id: int) -> None:
        """The operation alone for the rest of the transaction (closing months, voiding)."""
        self._for(operation_id, EXCLUSIVE)

    def _begun(self) -> Connection:
        """The transaction's connection, BEGIN sent (no operation's lock taken)."""
        if self._conn is None:
            self._conn = self._storage._pool.get()
            self._conn.execute("BEGIN")
        return self._conn

    def _run(self, sql: str, args: Sequence[object]) -> tuple[int, Sequence[Sequence[Any]]]:
        cur = self._begun().execute(sql.encode(), args)
        return cur.rowcount, cur.fetchall() if cur.description is not None else []

    def _for(self, operation_id: int, level: int = SHARED) -> Connection:
        """The transaction's connection, holding `operation_id`'s locks up to `level`."""
        held = self._level.get(operation_id, 0)
        conn = self._begun()
        if held >= level:
            return conn
        if held == 0:
            gate = "pg_advisory_xact_lock"
            if level != EXCLUSIVE:
                gate += "_shared"
            conn.execute(f"SELECT {gate}(%s, %s)", (GATE, operation_id))
        elif level == EXCLUSIVE:
            # The gate can't be upgraded from shared without risking a deadlock with another
            # upgrader; callers take it exclusively first (see `exclusive`).
            raise AssertionError("exclusive() must come before any other call for an operation")
        if level >= METER and held < METER:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (METERS, operation_id))
        self._level[operation_id] = level
        return conn

    def finish(self, commit: bool) -> bool:
        """COMMIT (or ROLLBACK) and let go of the connection and locks; True when committed."""
        conn, self._conn = self._conn, None
        try:
            if conn is None:
                return False
            try:
                conn.execute("COMMIT" if commit else "ROLLBACK")
            finally:
                self._storage._pool.put(conn)
            return commit
        finally:
            self._level.clear()


class PostgresStorage(
    SqlTenancy,
    SqlPrices,
    SqlBulkReads,
    Counters,
    MonthReads,
    MeterReads,
    DayMeterReads,
    EventLog,
    StatementReads,
    SqlAuditLog,
    SqlAlertReads,
    SqlMirrors,
    SqlAdminTokens,
    SqlDashboardSessions,
):
    """The scaled-out storage. Thread-safe: a small pool of connections shared by every thread;
    the URL may choose the schema with `options=-csearch_path%3Dname`.

    Each role port is a module of its own (events, meters, days, months, settings); tenancy and
    settings are shared with SQLite (adapters/sql)."""

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_wait: float = 10.0,
        connect_timeout: int = 3,
        statement_timeout_ms: int = 30_000,
        lock_timeout_ms: int = 10_000,
    ) -> None:
        settings = {
            "statement_timeout": str(statement_timeout_ms),
            "lock_timeout": str(lock_timeout_ms),
            "idle_in_transaction_session_timeout": "60000",
        }
        self._pool = Pool(url, pool_size, pool_wait, settings, connect_timeout)
        self._lock_wait = lock_timeout_ms / 1000
        self._products = Products(self._pool)
        self._armed_memo: ArmedMemo = {}
        self._local = threading.local()
        self._generation = 0  # bumped by every commit of this process, before it is answered
        self._generation_lock = threading.Lock()
        self._bump_owed = False
        self._after_commit: list[Callable[[], None]] = []

    @classmethod
    def from_url(cls, url: str) -> PostgresStorage:
        return cls(url)

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _conn(self) -> Iterator[Connection]:
        """A pooled connection for one call; any outage surfaces as Unavailable."""
        with _unavailable_on_failure():
            conn = self._pool.get()
            try:
                yield conn
            finally:
                self._pool.put(conn)

    @contextmanager
    def write(self) -> Iterator[_Transaction]:
        tx = _Transaction(self)
        with _unavailable_on_failure():
            try:
                yield tx
            except BaseException:
                # On failure the original error says more; the connection was discarded.
                with suppress(psycopg.Error):
                    tx.finish(commit=False)
                raise
            tx.finish(commit=True)
            if tx.changed:
                with self._generation_lock:
                    self._generation += 1
                self._bump_version()
                for hook in self._after_commit:
                    hook()

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call `hook` after every commit that changed something, before `write()` returns
        (so before the request that wrote is answered). It must not raise."""
        self._after_commit.append(hook)

    def change_listener(self, timeout: float = 3.0) -> ChangeListener:
        """A listener of this database's change notifications (one per process)."""
        return ChangeListener(self._pool.conninfo, self.deployment_id(), timeout=timeout)

    def _bump_version(self) -> None:
        """Tell other processes (through the sequence) after the commit, never before it: a
        reader must not cache old figures under the new version."""
        try:
            with self._conn() as conn:
                conn.execute("SELECT nextval('data_version')")
            self._bump_owed = False
        except Unavailable:
            self._bump_owed = True  # the data is committed; tell the others when we can

    def close(self) -> None:
        self._pool.close()

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> int:
        with self._conn() as conn:
            return schema.migrate(conn)

    def schema_version(self) -> int:
        with self._conn() as conn:
            return schema.version(conn)

    def check_schema(self) -> None:
        schema.check(self.schema_version())

    # -- the hooks of the shared SQL ----------------------------------------------------------

    def _others_version(self) -> int:
        """The shared `data_version` sequence, which every process advances after committing."""
        if self._bump_owed:
            self._bump_version()
        with self._conn() as conn:
            row = conn.execute(
                "SELECT last_value + is_called::integer FROM data_version"
            ).fetchone()
        return 0 if row is None else int(row[0])

    def _rows(self, sql: str, args: Sequence[object] = ()) -> Sequence[Sequence[Any]]:
        with self._conn() as conn:
            return conn.execute(sql.encode(), args).fetchall()

    def _snapshot(
        self, queries: list[tuple[str, Sequence[object]]]
    ) -> list[Sequence[Sequence[Any]]]:
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return [conn.execute(sql.encode(), args).fetchall() for sql, args in queries]

    def _change(self, sql: str, args: Sequence[object]) -> tuple[int, Sequence[Sequence[Any]]]:
        with self._conn() as conn:
            cur = conn.execute(sql.encode(), args)
            return cur.rowcount, cur.fetchall() if cur.description is not None else []
