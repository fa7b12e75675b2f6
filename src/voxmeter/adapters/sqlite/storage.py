"""SQLite storage: one writer at a time, any number of concurrent readers (WAL)."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from voxmeter.adapters.sql.admin_tokens import SqlAdminTokens, SqlAdminTokenWrites
from voxmeter.adapters.sql.alerts import ArmedMemo, SqlAlertReads, SqlAlertWrites
from voxmeter.adapters.sql.audit import SqlAuditLog, SqlAuditWrites
from voxmeter.adapters.sql.dialect import SQLITE
from voxmeter.adapters.sql.export import SqlBulkReads
from voxmeter.adapters.sql.mirrors import SqlMirrors, SqlMirrorWrites
from voxmeter.adapters.sql.prices import SqlPrices, SqlPriceWrites
from voxmeter.adapters.sql.sessions import SqlDashboardSessions
from voxmeter.adapters.sql.settings import SqlSettingWrites
from voxmeter.adapters.sql.tenancy import SqlTenancy, SqlTenancyWrites
from voxmeter.adapters.sqlite import schema
from voxmeter.adapters.sqlite.checkpoint import Checkpointer
from voxmeter.adapters.sqlite.days import DayMeterReads, DayMeterWrites
from voxmeter.adapters.sqlite.events import EventLog, EventWrites
from voxmeter.adapters.sqlite.final_statements import StatementReads, StatementWrites
from voxmeter.adapters.sqlite.meters import MeterReads, MeterWrites
from voxmeter.adapters.sqlite.months import MonthReads, MonthWrites
from voxmeter.adapters.sqlite.products import Products
from voxmeter.adapters.sqlite.settings import Counters

_WAL_KEPT_BYTES = 64 * 1024 * 1024  # a WAL file that grew larger is cut back when reset
_CHECKPOINT_CACHE_KIB = 1024
# Readers (one per worker thread, dozens under load) mostly read a few meter rows and listing
# pages; the OS keeps the file cached. A small cache each keeps the process size flat.
_READER_CACHE_KIB = 256


def path_from_url(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or `sqlite:///:memory:` -> a path."""
    if not url.startswith("sqlite:///"):
        raise ValueError("a SQLite URL looks like sqlite:///path/to/file.db")
    return url[len("sqlite:///") :]


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
    """The write side of one `BEGIN IMMEDIATE ... COMMIT`, composed of its roles' modules."""

    dialect = SQLITE
    duplicate = sqlite3.IntegrityError

    def __init__(self, conn: sqlite3.Connection, products: Products, memo: ArmedMemo) -> None:
        self._conn = conn
        self._products = products
        self._armed_memo = memo

    def exclusive(self, operation_id: int) -> None:
        """Already so: SQLite has one writer at a time."""

    def _run(self, sql: str, args: Sequence[object]) -> tuple[int, Sequence[Sequence[Any]]]:
        cur = self._conn.execute(sql, args)
        returned = cur.fetchall()
        return cur.rowcount, returned


class _Connection(sqlite3.Connection):
    """A connection that can be referenced weakly (the C type cannot)."""


class SqliteStorage(
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
    """The embedded storage. Thread-safe: one writer connection behind a lock, one reader per
    thread. Commits are synchronous (fsync) so an acknowledged batch survives a crash.

    Each role port is a module of its own (events, meters, days, months, settings); tenancy and
    settings are shared with PostgreSQL (adapters/sql)."""

    dialect = SQLITE

    def __init__(self, path: str, *, cache_mib: int = 16, durable: bool = True) -> None:
        self._path = path
        self._cache_kib = cache_mib * 1024
        self._synchronous = "FULL" if durable else "NORMAL"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._generation = 0  # bumped by every commit of this process, before it is answered
        self._local = threading.local()
        # Weak: a reader belongs to its thread, and must close when the thread ends (worker
        # pools retire idle threads), not live on here with its page cache.
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._products = Products()
        self._armed_memo: ArmedMemo = {}
        self._writer = self._connect(self._cache_kib)
        self._checkpointer: Checkpointer | None = None
        if path != ":memory:":
            # Checkpoints run on their own thread (checkpoint.py), not inside commits.
            self._writer.execute("PRAGMA wal_autocheckpoint = 0")
            self._writer.execute(f"PRAGMA journal_size_limit = {_WAL_KEPT_BYTES}")
            self._checkpointer = Checkpointer(lambda: self._connect(_CHECKPOINT_CACHE_KIB))
        self._products.load(self._writer)

    @classmethod
    def from_url(cls, url: str) -> SqliteStorage:
        return cls(path_from_url(url))

    def _connect(self, cache_kib: int) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
            factory=_Connection,
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute(f"PRAGMA cache_size = -{cache_kib}")
        # Temporary data (statement journals of level merges, big sorts) goes to temporary
        # files, not memory: a merge of a million ids would otherwise hold ~100 MB of old pages.
        conn.execute("PRAGMA temp_store = FILE")
        conn.execute("PRAGMA busy_timeout = 30000")
        with self._all_lock:
            self._all.add(conn)
        return conn

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> int:
        with self._write_lock:
            ran = schema.migrate(self._writer)
            self._products.load(self._writer)
            return ran

    def schema_version(self) -> int:
        return schema.version(self._reader())

    def check_schema(self) -> None:
        schema.check(self.schema_version())

    # -- plumbing ---------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(_READER_CACHE_KIB)
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[_Transaction]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Transaction(conn, self._products, self._armed_memo)
            except BaseException:
                conn.execute("ROLLBACK")
                self._products = Products()
                self._products.load(conn)
                raise
            conn.execute("COMMIT")
            self._generation += 1
        if self._checkpointer is not None:
            self._checkpointer.nudge()

    def _product_id(self, api: str) -> int | None:
        pid = self._products.known(api)
        if pid is None:
            # Another process may have added it since this one started.
            row = self._reader().execute("SELECT id FROM products WHERE api = ?", (api,)).fetchone()
            if row is not None:
                pid = int(row[0])
                self._products.ids[api] = pid
                self._products.apis[pid] = api
        return pid

    def _api(self, pid: int) -> str:
        api = self._products.apis.get(pid)
        if api is None:
            row = self._reader().execute("SELECT api FROM products WHERE id = ?", (pid,)).fetchone()
            api = str(row[0])
            self._products.apis[pid] = api
            self._products.ids[api] = pid
        return api

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._all_lock:
            for conn in list(self._all):
                conn.close()
            self._all.clear()

    # -- the hooks of the shared SQL ----------------------------------------------------------

    def _rows(self, sql: str, args: Sequence[object] = ()) -> Sequence[Sequence[Any]]:
        return self._reader().execute(sql, args).fetchall()

    def _snapshot(
        self, queries: list[tuple[str, Sequence[object]]]
    ) -> list[Sequence[Sequence[Any]]]:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return [conn.execute(sql, args).fetchall() for sql, args in queries]
        finally:
            conn.execute("COMMIT")

    def _change(self, sql: str, args: Sequence[object]) -> tuple[int, Sequence[Sequence[Any]]]:
        with self._write_lock:
            cur = self._writer.execute(sql, args)
            returned = cur.fetchall()
            return cur.rowcount, returned
