"""SQLite storage: one writer at a time, any number of concurrent readers (WAL)."""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from hashlib import blake2b
from pathlib import Path

import msgspec

from voxmeter.adapters.sqlite import schema
from voxmeter.adapters.sqlite.checkpoint import Checkpointer
from voxmeter.domain.events import UsageEvent, first_copies
from voxmeter.domain.meters import MeterKey, MeterState
from voxmeter.domain.tenancy import Operation, Token
from voxmeter.service.lru import LruCache
from voxmeter.service.ports import METER_CACHE_ENTRIES, MonthMeters, StoredEvent

_OPERATION_COLUMNS = "id, name, server, timezone, licenses, created"
_TOKEN_COLUMNS = "id, operation_id, description, scopes, created, revoked, last_used"  # noqa: S105
_encode = msgspec.json.Encoder().encode
_WAL_KEPT_BYTES = 64 * 1024 * 1024  # a WAL file that grew larger is cut back when reset
_CHECKPOINT_CACHE_KIB = 1024
# Readers (one per worker thread, dozens under load) mostly read a few meter rows and listing
# pages; the OS keeps the file cached. A small cache each keeps the process size flat.
_READER_CACHE_KIB = 256
_OTHER_WRITERS_CHECK = 0.001  # seconds between data_version checks for other processes' commits
# Events are inserted as multi-row VALUES with bound parameters, in chunks: SQLite does the
# per-row work in C, and binding is cheaper than JSON (json_each re-parses each element for
# every column it extracts). Rows keep the batch's order, so the i-th event gets the first
# seq + i. Ids are unique per operation through the id tables below, not an index here.
# Statements of 4,096 events, and the rest in power-of-two sizes (10,000 = 2 x 4,096 + 1,024 +
# 512 + 256 + 16): a prepared statement of thousands of rows holds a megabyte or more, and
# the connection caches every statement it ran, so only 13 distinct sizes may ever exist.
_CHUNK = 4096  # 5 parameters per event, far below SQLite's 32,766
_ROW = "(?1,?2,?,?,?,?,?)"  # each bare ? takes the next number after ?2
_INSERT_ROWS = (
    "INSERT INTO events (operation_id, received, id, product_id, time, quantity, subject) VALUES "
)
# Where stored ids are found (schema v2). Ids that sort after every id the operation stored
# before (time-ordered ids) are appended to `event_ids`, keyed by the id itself. Any other id
# gets a 64-bit key (_id_key) in the levels `event_keys_0` (small: a random batch dirties
# only its few pages), `event_keys_1` and `event_keys_2` (the rest). A level over its size is
# merged into the next in key order, so the big level gets runs of neighbouring keys per
# page instead of a random page per event. Every id is in exactly one table.
_LEVELS = (0, 1, 2)
_LEVEL_SIZES = {0: 50_000, 1: 1_000_000}  # the most keys a level holds before it is merged


def _in_every_level(select: str) -> str:
    """`select` (with `{level}` for the table suffix) over every level, as one UNION ALL."""
    return " UNION ALL ".join(select.format(level=level) for level in _LEVELS)


# Lookups that may match thousands of rows answer in one row (a JSON array): stepping row by
# row would hand the GIL back and forth once per row while other requests run Python.
_ORDERED_KNOWN = (
    "SELECT json_group_array(id) FROM event_ids"
    " WHERE operation_id = ?1 AND id IN (SELECT value FROM json_each(?2))"
)
_SEQS_OF_KEYS = (
    "SELECT json_group_array(seq) FROM ("  # noqa: S608
    + _in_every_level(
        "SELECT seq FROM event_keys_{level} WHERE key IN (SELECT value FROM json_each(?1))"
    )
    + ")"
)
# The operation's highest stored id and the highest seq of all, in one statement.
_HIGHEST_ID_AND_SEQ = (
    "SELECT (SELECT id FROM event_id_highest WHERE operation_id = ?),"
    " (SELECT coalesce(max(seq), 0) FROM events)"
)
_METERS_OF_KEYS = (
    "SELECT json_group_array(json_array(product_id, month, total, last_time, last_value))"
    " FROM meters WHERE operation_id = ?1"
    " AND (product_id, month) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?2))"
)
_SAVE_METERS = (
    "INSERT OR REPLACE INTO meters"
    " (operation_id, product_id, month, total, last_time, last_value)"
    " SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?2)"
)
# `+operation_id`: look events up by seq, not through events_by_time.
_IDS_OF_SEQS = (
    "SELECT json_group_array(id) FROM events"
    " WHERE seq IN (SELECT value FROM json_each(?2)) AND +operation_id = ?1"
)
_EVENT_BY_ID = (
    "SELECT seq, id, product_id, time, quantity, subject, received, voided FROM events"  # noqa: S608
    " WHERE +operation_id = ?1 AND id = ?2 AND seq IN ("
    "SELECT seq FROM event_ids WHERE operation_id = ?1 AND id = ?2 UNION ALL "
    + _in_every_level("SELECT seq FROM event_keys_{level} WHERE key = ?3")
    + ")"
)


@lru_cache(maxsize=16)
def _rows_sql(rows: int) -> str:
    """The INSERT of `rows` events (a power of two)."""
    return _INSERT_ROWS + ",".join([_ROW] * rows)


def _chunk_sizes(count: int) -> list[int]:
    """`count` as full chunks and then powers of two, largest first."""
    sizes = [_CHUNK] * (count // _CHUNK)
    rest = count % _CHUNK
    sizes += [1 << bit for bit in range(rest.bit_length() - 1, -1, -1) if rest >> bit & 1]
    return sizes


def _id_key(operation_id: int, event_id: str) -> int:
    """A 64-bit key for (operation, id): small, fixed-size and evenly spread. Two ids may share
    one, so a key match is always confirmed against the event's stored id."""
    data = b"%d:%s" % (operation_id, event_id.encode("utf-8", "surrogatepass"))
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little", signed=True)


def path_from_url(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or `sqlite:///:memory:` -> a path."""
    if not url.startswith("sqlite:///"):
        raise ValueError("a SQLite URL looks like sqlite:///path/to/file.db")
    return url[len("sqlite:///") :]


def _operation(row: tuple[object, ...]) -> Operation:
    return Operation(
        id=int(row[0]),  # type: ignore[call-overload]
        name=str(row[1]),
        server=str(row[2]),
        timezone=str(row[3]),
        licenses=int(row[4]),  # type: ignore[call-overload]
        created=int(row[5]),  # type: ignore[call-overload]
    )


def _token(row: tuple[object, ...]) -> Token:
    return Token(
        id=str(row[0]),
        operation_id=int(row[1]),  # type: ignore[call-overload]
        description=str(row[2]),
        scopes=frozenset(str(row[3]).split()),
        created=int(row[4]),  # type: ignore[call-overload]
        revoked=None if row[5] is None else int(row[5]),  # type: ignore[call-overload]
        last_used=None if row[6] is None else int(row[6]),  # type: ignore[call-overload]
    )


_texts = msgspec.json.Decoder(list[str]).decode
_meter_rows = msgspec.json.Decoder(list[tuple[int, int, str, int | None, int]]).decode


def _one(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> str:
    """The single text value a `json_group_array` query answers."""
    return str(conn.execute(sql, args).fetchone()[0])


def _count_level(conn: sqlite3.Connection, level: int, added: int) -> int:
    """Add to a level's id count; return the new count."""
    row = conn.execute(
        "UPDATE event_key_levels SET keys = keys + ? WHERE level = ? RETURNING keys",
        (added, level),
    ).fetchone()
    return int(row[0])


class _Products:
    """Product api <-> small integer id, assigned on first use and cached."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.apis: dict[int, str] = {}

    def load(self, conn: sqlite3.Connection) -> None:
        if schema.version(conn) == 0:
            return
        for pid, api in conn.execute("SELECT id, api FROM products"):
            self.ids[api] = pid
            self.apis[pid] = api

    def id_for(self, conn: sqlite3.Connection, api: str) -> int:
        pid = self.ids.get(api)
        if pid is None:
            conn.execute("INSERT OR IGNORE INTO products (api) VALUES (?)", (api,))
            pid = int(conn.execute("SELECT id FROM products WHERE api = ?", (api,)).fetchone()[0])
            self.ids[api] = pid
            self.apis[pid] = api
        return pid

    def known(self, api: str) -> int | None:
        return self.ids.get(api)


class _Transaction:
    """The write side of one `BEGIN IMMEDIATE ... COMMIT`."""

    def __init__(self, conn: sqlite3.Connection, products: _Products) -> None:
        self._conn = conn
        self._products = products

    def exclusive(self, operation_id: int) -> None:
        """Already so: SQLite has one writer at a time."""

    def known_ids(self, operation_id: int, ids: list[str]) -> set[str]:
        return self._known(operation_id, ids, [_id_key(operation_id, i) for i in ids])

    def _known(self, operation_id: int, ids: list[str], keys: list[int]) -> set[str]:
        """Ids found in `event_ids`, or whose key is in a level and whose event has that id."""
        conn = self._conn
        known = set(_texts(_one(conn, _ORDERED_KNOWN, (operation_id, _encode(ids)))))
        seqs = _one(conn, _SEQS_OF_KEYS, (_encode(keys),))
        if seqs != "[]":
            wanted = set(ids)
            matched = _texts(_one(conn, _IDS_OF_SEQS, (operation_id, seqs)))
            known.update(i for i in matched if i in wanted)
        return known

    def insert_new(
        self, operation_id: int, events: list[UsageEvent], received: int
    ) -> list[UsageEvent]:
        """Store the first copy of each id not stored before; return those events."""
        events = first_copies(events)  # the id tables hold each id once
        if not events:
            return []
        conn = self._conn
        ids = [e.id for e in events]
        highest, last_seq = conn.execute(_HIGHEST_ID_AND_SEQ, (operation_id,)).fetchone()
        if highest is None or min(ids) > highest:
            # Python's code point order is SQLite's BINARY order of UTF-8: none can be stored.
            self._append(operation_id, events, received, last_seq)
            fresh = events
        else:
            keys = [_id_key(operation_id, i) for i in ids]
            known = self._known(operation_id, ids, keys)
            fresh = [e for e in events if e.id not in known] if known else events
            if fresh:
                fresh_keys = (
                    keys
                    if len(fresh) == len(events)
                    else [k for k, e in zip(keys, events, strict=True) if e.id not in known]
                )
                self._insert_keyed(operation_id, fresh, fresh_keys, received, last_seq)
        if fresh:
            conn.execute(
                "INSERT INTO event_id_highest (operation_id, id) VALUES (?, ?)"
                " ON CONFLICT DO UPDATE SET id = max(id, excluded.id)",
                (operation_id, max(ids) if fresh is events else max(e.id for e in fresh)),
            )
        return fresh

    def _insert_events(
        self, operation_id: int, events: list[UsageEvent], received: int, before: int
    ) -> int:
        """Store the events in order after seq `before` (the highest stored); return the seq of
        the first (they get consecutive seqs)."""
        conn = self._conn
        pids = {api: self._products.id_for(conn, api) for api in {e.product for e in events}}
        cursor = None
        start = 0
        for size in _chunk_sizes(len(events)):
            params: list[object] = [operation_id, received]
            extend = params.extend
            for e in events[start : start + size]:
                extend((e.id, pids[e.product], e.time, e.quantity, e.subject))
            cursor = conn.execute(_rows_sql(size), params)
            start += size
        if cursor is None or cursor.lastrowid != before + len(events):
            raise RuntimeError("events did not get consecutive seqs")
        return before + 1

    def _append(
        self, operation_id: int, events: list[UsageEvent], received: int, last_seq: int
    ) -> None:
        """Ids after all stored ones: appended to `event_ids` in key order (cheap)."""
        first = self._insert_events(operation_id, events, received, last_seq)
        self._conn.execute(
            "INSERT INTO event_ids (operation_id, id, seq)"
            " SELECT operation_id, id, seq FROM events WHERE seq >= ?",
            (first,),
        )

    def _insert_keyed(
        self,
        operation_id: int,
        events: list[UsageEvent],
        keys: list[int],
        received: int,
        last_seq: int,
    ) -> None:
        """Other ids: their keys go to level 0; levels over their size are merged."""
        first = self._insert_events(operation_id, events, received, last_seq)
        self._conn.execute(
            "INSERT INTO event_keys_0 (key, seq) SELECT value, ?2 + key FROM json_each(?1)",
            (_encode(keys), first),
        )
        self._add_to_level(0, len(keys))

    def _add_to_level(self, level: int, added: int) -> None:
        """Count keys added to a level; merge each level that is over its size into the next,
        in key order, in this same transaction (so dedupe stays exact)."""
        conn = self._conn
        keys = _count_level(conn, level, added)
        while level in _LEVEL_SIZES and keys >= _LEVEL_SIZES[level]:
            conn.execute(
                f"INSERT INTO event_keys_{level + 1} (key, seq)"  # noqa: S608
                f" SELECT key, seq FROM event_keys_{level}"
            )
            conn.execute(f"DELETE FROM event_keys_{level}")  # noqa: S608
            _count_level(conn, level, -keys)
            level, keys = level + 1, _count_level(conn, level + 1, keys)

    def add_subjects(self, operation_id: int, events: list[UsageEvent]) -> dict[MeterKey, int]:
        uses: dict[tuple[str, int, str], int] = defaultdict(int)
        for e in events:
            if e.subject is not None:
                uses[(e.product, e.month, e.subject)] += 1
        new: dict[MeterKey, int] = defaultdict(int)
        for (product, month, subject), n in uses.items():
            pid = self._products.id_for(self._conn, product)
            row = self._conn.execute(
                "INSERT INTO subjects (operation_id, product_id, month, subject, n)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
                " RETURNING n",
                (operation_id, pid, month, subject, n),
            ).fetchone()
            if int(row[0]) == n:
                new[(product, month)] += 1
            else:
                new[(product, month)] += 0
        return dict(new)

    def remove_subject(self, operation_id: int, product: str, month: int, subject: str) -> bool:
        pid = self._products.id_for(self._conn, product)
        key = (operation_id, pid, month, subject)
        where = "operation_id = ? AND product_id = ? AND month = ? AND subject = ?"
        row = self._conn.execute(
            f"UPDATE subjects SET n = n - 1 WHERE {where} RETURNING n",  # noqa: S608
            key,
        ).fetchone()
        if row is not None and int(row[0]) <= 0:
            self._conn.execute(f"DELETE FROM subjects WHERE {where}", key)  # noqa: S608
            return True
        return False

    def meters(self, operation_id: int, keys_: Iterable[MeterKey]) -> dict[MeterKey, MeterState]:
        """The stored states of these keys, in one statement (one GIL hand-off)."""
        wanted = {}
        for product, month in keys_:
            pid = self._products.known(product)
            if pid is not None:
                wanted[(pid, month)] = (product, month)
        if not wanted:
            return {}
        packed = _one(self._conn, _METERS_OF_KEYS, (operation_id, _encode(list(wanted))))
        return {
            wanted[(pid, month)]: MeterState(int(total), last_time, int(last_value))
            for pid, month, total, last_time, last_value in _meter_rows(packed)
        }

    def save_meters(self, operation_id: int, states: dict[MeterKey, MeterState]) -> None:
        rows = [
            (
                self._products.id_for(self._conn, product),
                month,
                str(state.total),  # TEXT: a total may outgrow 64 bits
                state.last_time,
                state.last_value,
            )
            for (product, month), state in states.items()
        ]
        self._conn.execute(_SAVE_METERS, (operation_id, _encode(rows)))

    def event_for_void(self, operation_id: int, event_id: str) -> StoredEvent | None:
        row = self._conn.execute(
            _EVENT_BY_ID, (operation_id, event_id, _id_key(operation_id, event_id))
        ).fetchone()
        if row is None:
            return None
        return StoredEvent(
            row[0], event_id, self._products.apis[row[2]], row[3], row[4], row[5], row[6], row[7]
        )

    def mark_voided(self, operation_id: int, seq: int, when: int) -> None:
        self._conn.execute(
            "UPDATE events SET voided = ? WHERE operation_id = ? AND seq = ?",
            (when, operation_id, seq),
        )

    def month_events(
        self, operation_id: int, product: str, month: int, start: int, end: int
    ) -> list[UsageEvent]:
        pid = self._products.known(product)
        if pid is None:
            return []
        rows = self._conn.execute(
            "SELECT id, time, quantity, subject FROM events INDEXED BY events_by_time"
            " WHERE operation_id = ? AND time >= ? AND time < ? AND product_id = ?"
            " AND voided IS NULL ORDER BY seq",
            (operation_id, start, end, pid),
        )
        return [UsageEvent(i, product, t, month, q, s) for i, t, q, s in rows]

    def closed_months(self, operation_id: int) -> set[int]:
        rows = self._conn.execute(
            "SELECT month FROM closed_months WHERE operation_id = ?", (operation_id,)
        )
        return {int(r[0]) for r in rows}

    def first_month(self, operation_id: int) -> int | None:
        row = self._conn.execute(
            "SELECT min(month) FROM meters WHERE operation_id = ?", (operation_id,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def freeze(self, operation_id: int, month: int, totals: dict[str, int], when: int) -> None:
        self._conn.execute(
            "INSERT INTO closed_months (operation_id, month, closed) VALUES (?, ?, ?)",
            (operation_id, month, when),
        )
        self._conn.executemany(
            "INSERT INTO frozen_figures (operation_id, month, product_id, total)"
            " VALUES (?, ?, ?, ?)",
            [
                (operation_id, month, self._products.id_for(self._conn, api), str(total))
                for api, total in totals.items()
            ],
        )


class _Connection(sqlite3.Connection):
    """A connection that can be referenced weakly (the C type cannot)."""


class SqliteStorage:
    """The embedded storage. Thread-safe: one writer connection behind a lock, one reader per
    thread. Commits are synchronous (fsync) so an acknowledged batch survives a crash."""

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
        self._products = _Products()
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
                yield _Transaction(conn, self._products)
            except BaseException:
                conn.execute("ROLLBACK")
                self._products = _Products()
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

    # -- operations and tokens --------------------------------------------------------------

    def create_operation(
        self, name: str, server: str, timezone: str, licenses: int, created: int
    ) -> Operation:
        with self._write_lock:
            try:
                cur = self._writer.execute(
                    "INSERT INTO operations (name, server, timezone, licenses, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (name, server, timezone, licenses, created),
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"operation {name!r} already exists on server {server}") from exc
            return Operation(int(cur.lastrowid or 0), name, server, timezone, licenses, created)

    def operations(self) -> list[Operation]:
        rows = self._reader().execute(
            f"SELECT {_OPERATION_COLUMNS} FROM operations ORDER BY server, name"  # noqa: S608
        )
        return [_operation(r) for r in rows]

    def operation(self, operation_id: int) -> Operation | None:
        row = (
            self._reader()
            .execute(
                f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE id = ?",  # noqa: S608
                (operation_id,),
            )
            .fetchone()
        )
        return None if row is None else _operation(row)

    def create_token(self, token: Token, secret_hash: str) -> None:
        with self._write_lock:
            self._writer.execute(
                "INSERT INTO tokens (id, operation_id, hash, description, scopes, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
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
        row = (
            self._reader()
            .execute(
                f"SELECT {_TOKEN_COLUMNS}, hash FROM tokens WHERE hash = ?",  # noqa: S608
                (secret_hash,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return _token(row), str(row[7])

    def tokens(self, operation_id: int | None) -> list[Token]:
        if operation_id is None:
            rows = self._reader().execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created, id"  # noqa: S608
            )
        else:
            rows = self._reader().execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE operation_id = ?"  # noqa: S608
                " ORDER BY created, id",
                (operation_id,),
            )
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: str, when: int) -> bool:
        with self._write_lock:
            cur = self._writer.execute(
                "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (when, token_id)
            )
            return cur.rowcount == 1

    def save_request_counts(
        self, day_counts: dict[tuple[str, str], tuple[int, int]], last_used: dict[str, int]
    ) -> None:
        if not day_counts and not last_used:
            return
        with self.write() as _:
            self._writer.executemany(
                "INSERT INTO request_counts (token_id, day, operation_id, n) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET n = excluded.n",
                [(t, d, op, n) for (t, d), (op, n) in day_counts.items()],
            )
            self._writer.executemany(
                "UPDATE tokens SET last_used = max(coalesce(last_used, 0), ?) WHERE id = ?",
                [(when, t) for t, when in last_used.items()],
            )

    def request_counts(self, day: str, operation_id: int | None) -> dict[str, int]:
        if operation_id is None:
            rows = self._reader().execute(
                "SELECT token_id, n FROM request_counts WHERE day = ?", (day,)
            )
        else:
            rows = self._reader().execute(
                "SELECT token_id, n FROM request_counts WHERE day = ? AND operation_id = ?",
                (day, operation_id),
            )
        return {str(t): int(n) for t, n in rows}

    def setting(self, name: str) -> str | None:
        row = (
            self._reader().execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        )
        return None if row is None else str(row[0])

    def set_setting(self, name: str, value: str | None) -> None:
        with self._write_lock:
            if value is None:
                self._writer.execute("DELETE FROM settings WHERE name = ?", (name,))
            else:
                self._writer.execute(
                    "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, value)
                )

    def deployment_id(self) -> str:
        return schema.deployment_id(self._reader())

    # -- figures and events -----------------------------------------------------------------

    def version(self) -> tuple[int, int]:
        """(commits of this process, SQLite's `data_version` for everyone else's).

        This process bumps its count right after each commit, before the request that made it is
        answered; other processes' commits (the CLI) are seen through `data_version`, read at
        most once a millisecond per thread.
        """
        local = self._local
        now = time.monotonic()
        if now - getattr(local, "checked", -1.0) > _OTHER_WRITERS_CHECK:
            local.data_version = self._reader().execute("PRAGMA data_version").fetchone()[0]
            local.checked = now
        return self._generation, int(local.data_version)

    def month_meters(
        self, operation_id: int, month: int, products: tuple[str, ...], levels: tuple[str, ...]
    ) -> MonthMeters:
        """Cached per reader thread, for as long as `version()` stays the same."""
        local = self._local
        version = self.version()
        cache: LruCache[object, MonthMeters] | None = getattr(local, "meters", None)
        if cache is None or local.meters_version != version:
            cache = local.meters = LruCache(METER_CACHE_ENTRIES)
            local.meters_version = version
        key = (operation_id, month, products, levels)
        found = cache.get(key)
        if found is None:
            conn = self._reader()
            conn.execute("BEGIN")
            try:
                frozen = self.frozen_figures(operation_id, month)
                if frozen is None:
                    states = self.meter_states(operation_id, month, list(products))
                    carried = self.carried_levels(operation_id, month, list(levels))
                else:
                    states, carried = {}, {}
            finally:
                conn.execute("COMMIT")
            found = MonthMeters(frozen, states, carried)
            cache.put(key, found)
        return found

    def meter_states(
        self, operation_id: int, month: int, products: list[str]
    ) -> dict[str, MeterState]:
        conn = self._reader()
        found: dict[str, MeterState] = {}
        if len(products) == 1:
            pid = self._product_id(products[0])
            if pid is None:
                return found
            row = conn.execute(
                "SELECT total, last_time, last_value FROM meters"
                " WHERE operation_id = ? AND product_id = ? AND month = ?",
                (operation_id, pid, month),
            ).fetchone()
            if row is not None:
                found[products[0]] = MeterState(int(row[0]), row[1], int(row[2]))
            return found
        wanted = set(products)
        for pid, total, last_time, last_value in conn.execute(
            "SELECT product_id, total, last_time, last_value FROM meters"
            " WHERE operation_id = ? AND month = ?",
            (operation_id, month),
        ):
            api = self._api(pid)
            if api in wanted:
                found[api] = MeterState(int(total), last_time, int(last_value))
        return found

    def carried_levels(self, operation_id: int, month: int, products: list[str]) -> dict[str, int]:
        conn = self._reader()
        found: dict[str, int] = {}
        for api in products:
            pid = self._product_id(api)
            if pid is None:
                continue
            row = conn.execute(
                "SELECT last_value FROM meters WHERE operation_id = ? AND product_id = ?"
                " AND month < ? AND last_time IS NOT NULL ORDER BY month DESC LIMIT 1",
                (operation_id, pid, month),
            ).fetchone()
            if row is not None:
                found[api] = int(row[0])
        return found

    def frozen_figures(self, operation_id: int, month: int) -> dict[str, int] | None:
        conn = self._reader()
        closed = conn.execute(
            "SELECT 1 FROM closed_months WHERE operation_id = ? AND month = ?",
            (operation_id, month),
        ).fetchone()
        if closed is None:
            return None
        rows = conn.execute(
            "SELECT product_id, total FROM frozen_figures WHERE operation_id = ? AND month = ?",
            (operation_id, month),
        )
        return {self._api(pid): int(total) for pid, total in rows}

    def first_month(self, operation_id: int) -> int | None:
        row = (
            self._reader()
            .execute("SELECT min(month) FROM meters WHERE operation_id = ?", (operation_id,))
            .fetchone()
        )
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
        sql = (
            "SELECT seq, id, product_id, time, quantity, subject, received, voided FROM events"
            " INDEXED BY events_by_time WHERE operation_id = ? AND time >= ? AND time < ?"
        )
        args: list[object] = [operation_id, start, end]
        if product is not None:
            pid = self._product_id(product)
            if pid is None:
                return
            sql += " AND product_id = ?"
            args.append(pid)
        if after is not None:
            sql += " AND (time > ? OR (time = ? AND seq > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY time, seq LIMIT ?"
        args.append(limit)
        for seq, event_id, pid, at, quantity, subject, received, voided in self._reader().execute(
            sql, args
        ):
            yield StoredEvent(
                seq, event_id, self._api(pid), at, quantity, subject, received, voided
            )
