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
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import msgspec
import psycopg
from psycopg import errors as pg_errors

from voxmeter.adapters.postgres import schema
from voxmeter.adapters.postgres.pool import UNAVAILABLE, Connection, Pool
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.meters import MeterKey, MeterState
from voxmeter.domain.tenancy import Operation, Token
from voxmeter.errors import Unavailable
from voxmeter.service.ports import MonthMeters, StoredEvent

_OPERATION_COLUMNS = "id, name, server, timezone, licenses, created"
_TOKEN_COLUMNS = "id, operation_id, description, scopes, created, revoked, last_used"  # noqa: S105
_EVENT_COLUMNS = "e.seq, e.id, p.api, e.time, e.quantity, e.subject, e.received, e.voided"
_OTHER_WRITERS_CHECK = 0.001  # seconds between data_version reads for other processes' commits
_encode = msgspec.json.Encoder().encode

# The batch arrives as one JSON array of UsageEvent rows [id, product, time, month, quantity,
# subject] (msgspec encodes 10k of them in about a millisecond, far less client CPU than COPY
# rows or array parameters) and the product ids as a JSON object {api: id}. Sequence numbers are
# drawn in arrival order, but rows go into the unique id index in id order: two transactions
# storing overlapping batches then wait for each other in one direction only, never in a cycle
# (a deadlock). Plain INSERT first: a conflict means an id stored before (a retry) or by a
# concurrent batch, and then the savepoint is rolled back and the batch goes in again skipping
# stored ids (see bench/pg_insert.py).
_BATCH_ROWS = (
    " OVERRIDING SYSTEM VALUE"
    " SELECT b.seq, %(op)s, b.e ->> 0, (%(pids)s::jsonb ->> (b.e ->> 1))::integer,"
    " (b.e ->> 2)::bigint, (b.e ->> 4)::bigint, b.e ->> 5, %(received)s"
    " FROM (SELECT nextval('events_seq_seq'::regclass) AS seq, j.e"
    "   FROM jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS j(e, ord)"
    "   ORDER BY j.ord OFFSET 0) AS b"
    ' ORDER BY (b.e ->> 0) COLLATE "C"'
)
_INSERT_BATCH = (
    "INSERT INTO events (seq, operation_id, id, product_id, time, quantity, subject, received)"
    + _BATCH_ROWS
)
_INSERT_FRESH = _INSERT_BATCH + " ON CONFLICT (operation_id, id) DO NOTHING RETURNING id"

# One statement, so one snapshot: closed flag ('c'), frozen figures ('f'), meter states ('s')
# and carried-in levels ('l') of a month.
_MONTH_METERS = """
SELECT 'c', NULL::text, NULL::numeric, NULL::bigint, NULL::bigint
  FROM closed_months WHERE operation_id = %(op)s AND month = %(month)s
UNION ALL
SELECT 'f', p.api, f.total, NULL, NULL
  FROM frozen_figures AS f JOIN products AS p ON p.id = f.product_id
 WHERE f.operation_id = %(op)s AND f.month = %(month)s
UNION ALL
SELECT 's', p.api, m.total, m.last_time, m.last_value
  FROM meters AS m JOIN products AS p ON p.id = m.product_id
 WHERE m.operation_id = %(op)s AND m.month = %(month)s AND p.api = ANY(%(products)s::text[])
UNION ALL
(SELECT DISTINCT ON (m.product_id) 'l', p.api, NULL, NULL, m.last_value
   FROM meters AS m JOIN products AS p ON p.id = m.product_id
  WHERE m.operation_id = %(op)s AND m.month < %(month)s AND m.last_time IS NOT NULL
    AND p.api = ANY(%(levels)s::text[])
  ORDER BY m.product_id, m.month DESC)
"""


def _operation(row: Sequence[Any]) -> Operation:
    return Operation(
        id=int(row[0]),
        name=str(row[1]),
        server=str(row[2]),
        timezone=str(row[3]),
        licenses=int(row[4]),
        created=int(row[5]),
    )


def _token(row: Sequence[Any]) -> Token:
    return Token(
        id=str(row[0]),
        operation_id=int(row[1]),
        description=str(row[2]),
        scopes=frozenset(str(row[3]).split()),
        created=int(row[4]),
        revoked=None if row[5] is None else int(row[5]),
        last_used=None if row[6] is None else int(row[6]),
    )


def _stored(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        int(row[3]),
        int(row[4]),
        row[5],
        int(row[6]),
        None if row[7] is None else int(row[7]),
    )


def _state(total: Any, last_time: Any, last_value: Any) -> MeterState:
    return MeterState(int(total), None if last_time is None else int(last_time), int(last_value))


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


class _Products:
    """Product api -> small integer id, cached; unknown apis are registered on first use."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def ids(self, conn: Connection, apis: Iterable[str]) -> dict[str, int]:
        wanted = set(apis)
        missing = [api for api in wanted if api not in self._ids]
        if missing:
            found = self._lookup(conn, missing)
            if len(found) < len(missing):
                self._register([api for api in missing if api not in found])
                found = self._lookup(conn, missing)
            with self._lock:
                self._ids.update(found)
        return {api: self._ids[api] for api in wanted}

    @staticmethod
    def _lookup(conn: Connection, apis: list[str]) -> dict[str, int]:
        rows = conn.execute(
            "SELECT api, id FROM products WHERE api = ANY(%s::text[])", (apis,)
        ).fetchall()
        return {str(api): int(pid) for api, pid in rows}

    def _register(self, apis: list[str]) -> None:
        """Committed at once on a connection of its own: a product id is never rolled back with
        a failed batch, and registering never waits for another writer's transaction."""
        conn = self._pool.connect()
        try:
            conn.execute(
                "INSERT INTO products (api) SELECT unnest(%s::text[]) ON CONFLICT (api) DO NOTHING",
                (sorted(apis),),
            )
        finally:
            conn.close()


# Two transaction-scoped advisory locks per operation, always taken in this order (no deadlock):
# GATE (shared by ingests, exclusive for closing a month or voiding) and METERS (exclusive around
# read-merge-save of the meters). Two batches of one operation insert their events in parallel
# and queue only for the short meter update; a close or void waits for every ingest in progress.
_GATE, _METERS = 1, 2
_SHARED, _METER, _EXCLUSIVE = 1, 2, 3


class _Transaction:
    """One write transaction. The connection, BEGIN and the operation's locks are taken at the
    first call that names an operation, so a writer waiting for its operation holds nothing."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        self._conn: Connection | None = None
        self._level: dict[int, int] = {}
        self._voidable: dict[int, str] = {}
        self.changed = False

    def exclusive(self, operation_id: int) -> None:
        """The operation alone for the rest of the transaction (closing months, voiding)."""
        self._for(operation_id, _EXCLUSIVE)

    def _for(self, operation_id: int, level: int = _SHARED) -> Connection:
        """The transaction's connection, holding `operation_id`'s locks up to `level`."""
        held = self._level.get(operation_id, 0)
        if self._conn is None:
            self._conn = self._storage._pool.get()
            self._conn.execute("BEGIN")
        conn = self._conn
        if held >= level:
            return conn
        if held == 0:
            gate = "pg_advisory_xact_lock"
            if level != _EXCLUSIVE:
                gate += "_shared"
            conn.execute(f"SELECT {gate}(%s, %s)", (_GATE, operation_id))
        elif level == _EXCLUSIVE:
            # The gate can't be upgraded from shared without risking a deadlock with another
            # upgrader; callers take it exclusively first (see `exclusive`).
            raise AssertionError("exclusive() must come before any other call for an operation")
        if level >= _METER and held < _METER:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_METERS, operation_id))
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

    def known_ids(self, operation_id: int, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = (
            self._for(operation_id)
            .execute(
                "SELECT e.id FROM jsonb_array_elements_text(%s::jsonb) AS u(id)"
                " JOIN events AS e ON e.operation_id = %s AND e.id = u.id",
                (_encode(ids).decode(), operation_id),
            )
            .fetchall()
        )
        return {str(r[0]) for r in rows}

    def insert_new(
        self, operation_id: int, events: list[UsageEvent], received: int
    ) -> list[UsageEvent]:
        """One INSERT for the whole batch; see _INSERT_BATCH for how ids stored before are
        skipped. The first copy of an id wins, in this batch too."""
        if not events:
            return []
        conn = self._for(operation_id)
        pids = self._storage._products.ids(conn, {e.product for e in events})
        args = {
            "op": operation_id,
            "pids": _encode(pids).decode(),
            "received": received,
            "events": _encode(events).decode(),
        }
        conn.execute("SAVEPOINT insert_new")
        try:
            conn.execute(_INSERT_BATCH, args)
            fresh = events
        except pg_errors.UniqueViolation:
            conn.execute("ROLLBACK TO SAVEPOINT insert_new")
            stored = {str(r[0]) for r in conn.execute(_INSERT_FRESH, args).fetchall()}
            fresh = []
            for e in events:
                if e.id in stored:
                    fresh.append(e)
                    stored.discard(e.id)
        conn.execute("RELEASE SAVEPOINT insert_new")
        self.changed = self.changed or bool(fresh)
        return fresh

    def add_subjects(self, operation_id: int, events: list[UsageEvent]) -> dict[MeterKey, int]:
        uses: dict[tuple[str, int, str], int] = defaultdict(int)
        for e in events:
            if e.subject is not None:
                uses[(e.product, e.month, e.subject)] += 1
        if not uses:
            return {}
        conn = self._for(operation_id, _METER)
        pids = self._storage._products.ids(conn, {product for product, _, _ in uses})
        apis = {pid: api for api, pid in pids.items()}
        rows = conn.execute(
            "INSERT INTO subjects (operation_id, product_id, month, subject, n)"
            " SELECT %s, (u.e ->> 0)::integer, (u.e ->> 1)::integer, u.e ->> 2,"
            " (u.e ->> 3)::bigint FROM jsonb_array_elements(%s::jsonb) AS u(e)"
            " ON CONFLICT (operation_id, product_id, month, subject)"
            " DO UPDATE SET n = subjects.n + excluded.n"
            " RETURNING product_id, month, subject, n",
            (
                operation_id,
                _encode([[pids[p], m, s, n] for (p, m, s), n in uses.items()]).decode(),
            ),
        ).fetchall()
        self.changed = True
        new: dict[MeterKey, int] = defaultdict(int)
        for pid, month, subject, n in rows:
            key = (apis[int(pid)], int(month))
            # A subject is new to the month when its count is exactly what this batch added.
            new[key] += int(int(n) == uses[(key[0], key[1], str(subject))])
        return dict(new)

    def remove_subject(self, operation_id: int, product: str, month: int, subject: str) -> bool:
        conn = self._for(operation_id, _METER)
        pid = self._storage._products.ids(conn, [product])[product]
        key = (operation_id, pid, month, subject)
        row = conn.execute(
            "UPDATE subjects SET n = n - 1 WHERE operation_id = %s AND product_id = %s"
            " AND month = %s AND subject = %s RETURNING n",
            key,
        ).fetchone()
        self.changed = True
        if row is not None and int(row[0]) <= 0:
            conn.execute(
                "DELETE FROM subjects WHERE operation_id = %s AND product_id = %s"
                " AND month = %s AND subject = %s",
                key,
            )
            return True
        return False

    def meters(self, operation_id: int, keys: Iterable[MeterKey]) -> dict[MeterKey, MeterState]:
        wanted = set(keys)
        if not wanted:
            return {}
        rows = (
            self._for(operation_id, _METER)
            .execute(
                "SELECT p.api, m.month, m.total, m.last_time, m.last_value"
                " FROM meters AS m JOIN products AS p ON p.id = m.product_id"
                " WHERE m.operation_id = %s AND m.month = ANY(%s::integer[])"
                " AND p.api = ANY(%s::text[])",
                (operation_id, sorted({m for _, m in wanted}), sorted({p for p, _ in wanted})),
            )
            .fetchall()
        )
        found: dict[MeterKey, MeterState] = {}
        for api, month, total, last_time, last_value in rows:
            key = (str(api), int(month))
            if key in wanted:
                found[key] = _state(total, last_time, last_value)
        return found

    def save_meters(self, operation_id: int, states: dict[MeterKey, MeterState]) -> None:
        if not states:
            return
        conn = self._for(operation_id, _METER)
        pids = self._storage._products.ids(conn, {product for product, _ in states})
        rows = [
            [pids[product], month, str(s.total), s.last_time, s.last_value]
            for (product, month), s in states.items()
        ]
        conn.execute(
            "INSERT INTO meters (operation_id, product_id, month, total, last_time, last_value)"
            " SELECT %s, (u.e ->> 0)::integer, (u.e ->> 1)::integer, (u.e ->> 2)::numeric,"
            " (u.e ->> 3)::bigint, (u.e ->> 4)::bigint FROM jsonb_array_elements(%s::jsonb) AS u(e)"
            " ON CONFLICT (operation_id, product_id, month) DO UPDATE SET"
            " total = excluded.total, last_time = excluded.last_time,"
            " last_value = excluded.last_value",
            (operation_id, _encode(rows).decode()),
        )
        self.changed = True

    def event_for_void(self, operation_id: int, event_id: str) -> StoredEvent | None:
        row = (
            self._for(operation_id)
            .execute(
                f"SELECT {_EVENT_COLUMNS} FROM events AS e"  # noqa: S608
                " JOIN products AS p ON p.id = e.product_id"
                " WHERE e.operation_id = %s AND e.id = %s",
                (operation_id, event_id),
            )
            .fetchone()
        )
        if row is None:
            return None
        event = _stored(row)
        self._voidable[event.seq] = event.id
        return event

    def mark_voided(self, operation_id: int, seq: int, when: int) -> None:
        conn = self._for(operation_id, _METER)
        event_id = self._voidable.get(seq)
        if event_id is not None:  # found by event_for_void: reach it through the id index
            conn.execute(
                "UPDATE events SET voided = %s WHERE operation_id = %s AND id = %s AND seq = %s",
                (when, operation_id, event_id, seq),
            )
        else:
            conn.execute(
                "UPDATE events SET voided = %s WHERE operation_id = %s AND seq = %s",
                (when, operation_id, seq),
            )
        self.changed = True

    def month_events(
        self, operation_id: int, product: str, month: int, start: int, end: int
    ) -> list[UsageEvent]:
        rows = (
            self._for(operation_id, _METER)
            .execute(
                "SELECT e.id, e.time, e.quantity, e.subject FROM events AS e"
                " WHERE e.operation_id = %s AND e.time >= %s AND e.time < %s"
                " AND e.product_id = (SELECT id FROM products WHERE api = %s)"
                " AND e.voided IS NULL ORDER BY e.seq",
                (operation_id, start, end, product),
            )
            .fetchall()
        )
        return [UsageEvent(str(i), product, int(t), month, int(q), s) for i, t, q, s in rows]

    def closed_months(self, operation_id: int) -> set[int]:
        rows = (
            self._for(operation_id)
            .execute("SELECT month FROM closed_months WHERE operation_id = %s", (operation_id,))
            .fetchall()
        )
        return {int(r[0]) for r in rows}

    def first_month(self, operation_id: int) -> int | None:
        row = (
            self._for(operation_id)
            .execute("SELECT min(month) FROM meters WHERE operation_id = %s", (operation_id,))
            .fetchone()
        )
        return None if row is None or row[0] is None else int(row[0])

    def freeze(self, operation_id: int, month: int, totals: dict[str, int], when: int) -> None:
        conn = self._for(operation_id, _METER)
        pids = self._storage._products.ids(conn, totals)
        conn.execute(
            "INSERT INTO closed_months (operation_id, month, closed) VALUES (%s, %s, %s)",
            (operation_id, month, when),
        )
        conn.execute(
            "INSERT INTO frozen_figures (operation_id, month, product_id, total)"
            " SELECT %s, %s, (u.e ->> 0)::integer, (u.e ->> 1)::numeric"
            " FROM jsonb_array_elements(%s::jsonb) AS u(e)",
            (
                operation_id,
                month,
                _encode([[pids[api], str(total)] for api, total in totals.items()]).decode(),
            ),
        )
        self.changed = True


class PostgresStorage:
    """The scaled-out storage. Thread-safe: a small pool of connections shared by every thread;
    the URL may choose the schema with `options=-csearch_path%3Dname`."""

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
        self._products = _Products(self._pool)
        self._local = threading.local()
        self._generation = 0  # bumped by every commit of this process, before it is answered
        self._generation_lock = threading.Lock()
        self._bump_owed = False

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

    # -- operations and tokens --------------------------------------------------------------

    def create_operation(
        self, name: str, server: str, timezone: str, licenses: int, created: int
    ) -> Operation:
        with self._conn() as conn:
            try:
                row = conn.execute(
                    "INSERT INTO operations (name, server, timezone, licenses, created)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (name, server, timezone, licenses, created),
                ).fetchone()
            except pg_errors.UniqueViolation as exc:
                raise ValueError(f"operation {name!r} already exists on server {server}") from exc
        assert row is not None
        return Operation(int(row[0]), name, server, timezone, licenses, created)

    def operations(self) -> list[Operation]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {_OPERATION_COLUMNS} FROM operations"  # noqa: S608
                ' ORDER BY server COLLATE "C", name COLLATE "C"'
            ).fetchall()
        return [_operation(r) for r in rows]

    def operation(self, operation_id: int) -> Operation | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE id = %s",  # noqa: S608
                (operation_id,),
            ).fetchone()
        return None if row is None else _operation(row)

    def create_token(self, token: Token, secret_hash: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO tokens (id, operation_id, hash, description, scopes, created)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    token.id,
                    token.operation_id,
                    secret_hash,
                    token.description,
                    " ".join(sorted(token.scopes)),
                    token.created,
                ),
            )

    def token_by_hash(self, secret_hash: str) -> tuple[Token, str] | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {_TOKEN_COLUMNS}, hash FROM tokens WHERE hash = %s",  # noqa: S608
                (secret_hash,),
            ).fetchone()
        if row is None:
            return None
        return _token(row), str(row[7])

    def tokens(self, operation_id: int | None) -> list[Token]:
        with self._conn() as conn:
            if operation_id is None:
                rows = conn.execute(
                    f"SELECT {_TOKEN_COLUMNS} FROM tokens"  # noqa: S608
                    ' ORDER BY created, id COLLATE "C"'
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE operation_id = %s"  # noqa: S608
                    ' ORDER BY created, id COLLATE "C"',
                    (operation_id,),
                ).fetchall()
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: str, when: int) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE tokens SET revoked = %s WHERE id = %s AND revoked IS NULL",
                (when, token_id),
            )
            return cur.rowcount == 1

    def save_request_counts(
        self, day_counts: dict[tuple[str, str], tuple[int, int]], last_used: dict[str, int]
    ) -> None:
        if not day_counts and not last_used:
            return
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            if day_counts:
                cur.executemany(
                    "INSERT INTO request_counts (token_id, day, operation_id, n)"
                    " VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (token_id, day) DO UPDATE SET n = excluded.n",
                    [(t, d, op, n) for (t, d), (op, n) in sorted(day_counts.items())],
                )
            if last_used:
                cur.executemany(
                    "UPDATE tokens SET last_used = greatest(coalesce(last_used, 0), %s)"
                    " WHERE id = %s",
                    [(when, t) for t, when in sorted(last_used.items())],
                )

    def request_counts(self, day: str, operation_id: int | None) -> dict[str, int]:
        with self._conn() as conn:
            if operation_id is None:
                rows = conn.execute(
                    "SELECT token_id, n FROM request_counts WHERE day = %s", (day,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT token_id, n FROM request_counts WHERE day = %s AND operation_id = %s",
                    (day, operation_id),
                ).fetchall()
        return {str(t): int(n) for t, n in rows}

    def setting(self, name: str) -> str | None:
        with self._conn() as conn:
            row = conn.execute("SELECT value FROM settings WHERE name = %s", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, name: str, value: str | None) -> None:
        with self._conn() as conn:
            if value is None:
                conn.execute("DELETE FROM settings WHERE name = %s", (name,))
            else:
                conn.execute(
                    "INSERT INTO settings (name, value) VALUES (%s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, value),
                )

    def deployment_id(self) -> str:
        with self._conn() as conn:
            return schema.deployment_id(conn)

    # -- figures and events -----------------------------------------------------------------

    def version(self) -> tuple[int, int]:
        """(commits of this process, the shared `data_version` sequence for everyone else's).

        This process bumps its count right after each commit, before the request that made it
        is answered; other processes' commits are seen through the sequence they advance after
        committing, read at most once a millisecond per thread.
        """
        local = self._local
        now = time.monotonic()
        if now - getattr(local, "checked", -1.0) > _OTHER_WRITERS_CHECK:
            if self._bump_owed:
                self._bump_version()
            with self._conn() as conn:
                row = conn.execute(
                    "SELECT last_value + is_called::integer FROM data_version"
                ).fetchone()
            local.data_version = 0 if row is None else int(row[0])
            local.checked = now
        return self._generation, int(local.data_version)

    def month_meters(
        self, operation_id: int, month: int, products: tuple[str, ...], levels: tuple[str, ...]
    ) -> MonthMeters:
        """One statement (one snapshot); cached per thread for as long as `version()` stays."""
        local = self._local
        version = self.version()  # before reading: the cached data is never older than its key
        cache: dict[object, MonthMeters] | None = getattr(local, "meters", None)
        if cache is None or local.meters_version != version:
            cache = local.meters = {}
            local.meters_version = version
        key = (operation_id, month, products, levels)
        found = cache.get(key)
        if found is None:
            with self._conn() as conn:
                rows = conn.execute(
                    _MONTH_METERS,
                    {
                        "op": operation_id,
                        "month": month,
                        "products": list(products),
                        "levels": list(levels),
                    },
                ).fetchall()
            closed = any(kind == "c" for kind, *_ in rows)
            if closed:
                frozen = {str(api): int(total) for kind, api, total, _, _ in rows if kind == "f"}
                found = MonthMeters(frozen, {}, {})
            else:
                states = {
                    str(api): _state(total, last_time, last_value)
                    for kind, api, total, last_time, last_value in rows
                    if kind == "s"
                }
                carried = {str(api): int(value) for kind, api, _, _, value in rows if kind == "l"}
                found = MonthMeters(None, states, carried)
            if len(cache) > 4096:
                cache.clear()
            cache[key] = found
        return found

    def meter_states(
        self, operation_id: int, month: int, products: list[str]
    ) -> dict[str, MeterState]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT p.api, m.total, m.last_time, m.last_value"
                " FROM meters AS m JOIN products AS p ON p.id = m.product_id"
                " WHERE m.operation_id = %s AND m.month = %s AND p.api = ANY(%s::text[])",
                (operation_id, month, products),
            ).fetchall()
        return {str(api): _state(total, t, v) for api, total, t, v in rows}

    def carried_levels(self, operation_id: int, month: int, products: list[str]) -> dict[str, int]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (m.product_id) p.api, m.last_value"
                " FROM meters AS m JOIN products AS p ON p.id = m.product_id"
                " WHERE m.operation_id = %s AND m.month < %s AND m.last_time IS NOT NULL"
                " AND p.api = ANY(%s::text[]) ORDER BY m.product_id, m.month DESC",
                (operation_id, month, products),
            ).fetchall()
        return {str(api): int(value) for api, value in rows}

    def frozen_figures(self, operation_id: int, month: int) -> dict[str, int] | None:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT p.api, f.total FROM closed_months AS c"
                " LEFT JOIN frozen_figures AS f"
                " ON f.operation_id = c.operation_id AND f.month = c.month"
                " LEFT JOIN products AS p ON p.id = f.product_id"
                " WHERE c.operation_id = %s AND c.month = %s",
                (operation_id, month),
            ).fetchall()
        if not rows:
            return None
        return {str(api): int(total) for api, total in rows if api is not None}

    def first_month(self, operation_id: int) -> int | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT min(month) FROM meters WHERE operation_id = %s", (operation_id,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def events(
        self,
        operation_id: int,
        start: int,
        end: int,
        product: str | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> Iterator[StoredEvent]:
        """Fetched whole (a page is at most 60,001 rows), so the connection goes back to the
        pool before the caller iterates."""
        query = (
            f"SELECT {_EVENT_COLUMNS} FROM events AS e"  # noqa: S608
            " JOIN products AS p ON p.id = e.product_id"
            " WHERE e.operation_id = %(op)s AND e.time >= %(start)s AND e.time < %(end)s"
        )
        args: dict[str, object] = {"op": operation_id, "start": start, "end": end}
        if product is not None:
            # A scalar subquery, not a filter on the join: the planner then walks events_by_time
            # in order and stops at the limit.
            query += " AND e.product_id = (SELECT id FROM products WHERE api = %(product)s)"
            args["product"] = product
        if after is not None:
            query += " AND (e.time, e.seq) > (%(after_time)s, %(after_seq)s)"
            args["after_time"], args["after_seq"] = after
        query += " ORDER BY e.time, e.seq LIMIT %(limit)s"
        args["limit"] = limit
        with self._conn() as conn:
            rows = conn.execute(query.encode(), args).fetchall()
        return iter([_stored(r) for r in rows])
