"""Versioned schema for the SQLite storage. Each migration is applied once, in order."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from voxmeter import errors
from voxmeter.adapters.sql import day_backfill, schema_checks
from voxmeter.adapters.sql.schema_checks import stored_deployment

Migration = str | Callable[[sqlite3.Connection], None]
"""SQL statements, or a function run inside the migration transaction (for what SQL cannot
do alone, such as local days in an IANA timezone)."""

_DAY_METER_TABLES = """
    CREATE TABLE day_meters (
        operation_id INTEGER NOT NULL,
        product_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        total TEXT NOT NULL,
        last_time INTEGER,
        last_value INTEGER NOT NULL,
        PRIMARY KEY (operation_id, product_id, day)
    ) WITHOUT ROWID;
    CREATE TABLE day_subjects (
        operation_id INTEGER NOT NULL,
        product_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        subject TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (operation_id, product_id, day, subject)
    ) WITHOUT ROWID
"""


def _add_day_meters(conn: sqlite3.Connection) -> None:
    """Day meters (keyed by the local day as a date ordinal), filled from the stored events."""
    for statement in _DAY_METER_TABLES.split(";"):
        conn.execute(statement)
    zones = {int(i): str(tz) for i, tz in conn.execute("SELECT id, timezone FROM operations")}
    apis = {int(i): str(api) for i, api in conn.execute("SELECT id, api FROM products")}
    rows = conn.execute(
        "SELECT operation_id, product_id, time, quantity, subject FROM events"
        " WHERE voided IS NULL ORDER BY seq"
    )
    states, subjects = day_backfill.day_meters(
        ((op, apis[pid], t, q, s) for op, pid, t, q, s in rows),
        zones,
        day_backfill.migration_catalog(),
    )
    ids = {api: pid for pid, api in apis.items()}
    conn.executemany(
        "INSERT INTO day_meters VALUES (?, ?, ?, ?, ?, ?)",
        [
            (op, ids[api], day, str(s.total), s.last_time, s.last_value)
            for (op, api, day), s in states.items()
        ],
    )
    conn.executemany(
        "INSERT INTO day_subjects VALUES (?, ?, ?, ?, ?)",
        [(op, ids[api], day, subject, n) for (op, api, day, subject), n in subjects.items()],
    )


MIGRATIONS: list[Migration] = [
    # 1: the core service
    """
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        server TEXT NOT NULL,
        timezone TEXT NOT NULL,
        licenses INTEGER NOT NULL,
        created INTEGER NOT NULL,
        UNIQUE (server, name)
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        operation_id INTEGER NOT NULL REFERENCES operations (id),
        hash TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created INTEGER NOT NULL,
        revoked INTEGER,
        last_used INTEGER
    );
    CREATE TABLE request_counts (
        token_id TEXT NOT NULL,
        day TEXT NOT NULL,
        operation_id INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (token_id, day)
    ) WITHOUT ROWID;
    CREATE TABLE products (id INTEGER PRIMARY KEY, api TEXT NOT NULL UNIQUE);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        operation_id INTEGER NOT NULL,
        id TEXT NOT NULL,
        product_id INTEGER NOT NULL,
        time INTEGER NOT NULL,
        quantity INTEGER NOT NULL,
        subject TEXT,
        received INTEGER NOT NULL,
        voided INTEGER
    );
    CREATE UNIQUE INDEX events_by_id ON events (operation_id, id);
    CREATE INDEX events_by_time ON events (operation_id, time);
    CREATE TABLE meters (
        operation_id INTEGER NOT NULL,
        product_id INTEGER NOT NULL,
        month INTEGER NOT NULL,
        total TEXT NOT NULL,
        last_time INTEGER,
        last_value INTEGER NOT NULL,
        PRIMARY KEY (operation_id, product_id, month)
    ) WITHOUT ROWID;
    CREATE TABLE subjects (
        operation_id INTEGER NOT NULL,
        product_id INTEGER NOT NULL,
        month INTEGER NOT NULL,
        subject TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (operation_id, product_id, month, subject)
    ) WITHOUT ROWID;
    CREATE TABLE closed_months (
        operation_id INTEGER NOT NULL,
        month INTEGER NOT NULL,
        closed INTEGER NOT NULL,
        PRIMARY KEY (operation_id, month)
    ) WITHOUT ROWID;
    CREATE TABLE frozen_figures (
        operation_id INTEGER NOT NULL,
        month INTEGER NOT NULL,
        product_id INTEGER NOT NULL,
        total TEXT NOT NULL,
        PRIMARY KEY (operation_id, month, product_id)
    ) WITHOUT ROWID;
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: event ids leave the events table's unique index, where random ids dirtied a page per
    # event, for the tables described in storage.py (_INSERT_BATCH and below). Stored ids stay
    # keyed by the id itself in event_ids; new ones that do not sort last get 64-bit keys in
    # levels merged in key order.
    """
    CREATE TABLE event_ids (
        operation_id INTEGER NOT NULL,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (operation_id, id)
    ) WITHOUT ROWID;
    INSERT INTO event_ids (operation_id, id, seq)
        SELECT operation_id, id, seq FROM events ORDER BY operation_id, id;
    CREATE TABLE event_id_highest (operation_id INTEGER PRIMARY KEY, id TEXT NOT NULL);
    INSERT INTO event_id_highest (operation_id, id)
        SELECT operation_id, max(id) FROM event_ids GROUP BY operation_id;
    DROP INDEX events_by_id;
    CREATE TABLE event_keys_0 (key INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (key, seq))
        WITHOUT ROWID;
    CREATE TABLE event_keys_1 (key INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (key, seq))
        WITHOUT ROWID;
    CREATE TABLE event_keys_2 (key INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (key, seq))
        WITHOUT ROWID;
    CREATE TABLE event_key_levels (level INTEGER PRIMARY KEY, keys INTEGER NOT NULL);
    INSERT INTO event_key_levels (level, keys) VALUES (0, 0), (1, 0), (2, 0);
    """,
    # 3: the deployment id, a random name of this database made once with its schema. Limit
    # state in Redis is keyed by it, so two databases sharing a Redis (and a key prefix) never
    # share a counter or an in-flight slot, although their operation ids restart at 1.
    """
    CREATE TABLE deployment (
        one INTEGER PRIMARY KEY DEFAULT 1 CHECK (one = 1),
        id TEXT NOT NULL
    );
    INSERT INTO deployment (id) VALUES (lower(hex(randomblob(16))));
    """,
    # 4: per-day meters beside the month meters, for the daily breakdown; stored events get
    # theirs here, so an upgraded database answers for its past days at once.
    _add_day_meters,
    # 5: the audit log, append-only: triggers refuse every UPDATE and DELETE of an entry.
    # operation_id is NULL for deployment-wide changes (maintenance); details is a JSON object.
    """
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        operation_id INTEGER,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_log_by_time ON audit_log (time, seq);
    CREATE INDEX audit_log_by_operation ON audit_log (operation_id, time, seq);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only');
    END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only');
    END;
    """,
    # 6: each operation bills in one currency (ISO 4217); operations made before bill in USD.
    """
    ALTER TABLE operations ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';
    """,
    # 7: prices per (scope, product, currency); scope 0 is the deployment's default, else the
    # operation whose price overrides it. The price is JSON text (adapters/sql/prices.py).
    """
    CREATE TABLE prices (
        scope INTEGER NOT NULL,
        product TEXT NOT NULL,
        currency TEXT NOT NULL,
        price TEXT NOT NULL,
        PRIMARY KEY (scope, product, currency)
    ) WITHOUT ROWID;
    """,
    # 8: final statements, encoded once in the transaction that closes their month.
    """
    CREATE TABLE statements (
        operation_id INTEGER NOT NULL,
        month INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (operation_id, month)
    ) WITHOUT ROWID;
    """,
    # 9: alerts, their firings (at most one per alert and month: the primary key), the
    # delivery outbox and every delivery attempt (adapters/sql/alerts.py). The threshold is
    # decimal text; the signing secret is sealed with the deployment's key. `alert_state` holds
    # a version advanced by every alert created, deleted or fired (what ingest caches by).
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        operation_id INTEGER NOT NULL,
        product TEXT,
        measure TEXT NOT NULL,
        threshold TEXT NOT NULL,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        payload TEXT NOT NULL,
        created INTEGER NOT NULL,
        deleted INTEGER
    );
    CREATE INDEX alerts_of_operation ON alerts (operation_id) WHERE deleted IS NULL;
    CREATE TABLE alert_firings (
        alert_id INTEGER NOT NULL,
        month INTEGER NOT NULL,
        fired_at INTEGER NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (alert_id, month)
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL,
        operation_id INTEGER NOT NULL,
        month INTEGER NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL,
        created INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        first_attempt INTEGER,
        claimed_by TEXT,
        claimed_until INTEGER
    );
    CREATE INDEX deliveries_due ON deliveries (next_attempt) WHERE state = 'pending';
    CREATE INDEX deliveries_of_alert ON deliveries (alert_id);
    CREATE INDEX deliveries_of_operation ON deliveries (operation_id);
    CREATE TABLE delivery_attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL,
        time INTEGER NOT NULL,
        status INTEGER,
        error TEXT,
        duration INTEGER NOT NULL
    );
    CREATE INDEX attempts_of_delivery ON delivery_attempts (delivery_id);
    CREATE TABLE alert_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO alert_state (id, version) VALUES (1, 0);
    """,
    # 10: mirrors (operations whose figures come from sweeping an upstream server), their
    # sweep state and lease, and the readings each sweep stores.
    """
    ALTER TABLE operations ADD COLUMN mirror INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE mirrors (
        operation_id INTEGER PRIMARY KEY,
        upstream_url TEXT,
        token TEXT NOT NULL,
        interval_minutes INTEGER NOT NULL,
        budget_percent INTEGER NOT NULL,
        stale_minutes INTEGER NOT NULL,
        state TEXT NOT NULL,
        next_due INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER NOT NULL
    );
    CREATE TABLE mirror_readings (
        operation_id INTEGER NOT NULL,
        product TEXT NOT NULL,
        month INTEGER NOT NULL,
        figure TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (operation_id, product, month, first_seen)
    ) WITHOUT ROWID;
    """,
    # 11: deployment-wide admin tokens (they open the dashboard's overview, no API), and
    # dashboard sign-in sessions: the session's secret is kept only as its hash.
    """
    CREATE TABLE admin_tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        created INTEGER NOT NULL,
        revoked INTEGER,
        last_used INTEGER
    );
    CREATE TABLE dashboard_sessions (
        hash TEXT PRIMARY KEY,
        token_id TEXT NOT NULL,
        operation_id INTEGER,
        created INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX dashboard_sessions_by_token ON dashboard_sessions (token_id);
    """,
    # 12: firings of staleness alerts (`--on stale`), at most one per alert and staleness
    # episode (the instant staleness is counted from): the primary key.
    """
    CREATE TABLE stale_firings (
        alert_id INTEGER NOT NULL,
        episode INTEGER NOT NULL,
        fired_at INTEGER NOT NULL,
        PRIMARY KEY (alert_id, episode)
    ) WITHOUT ROWID;
    CREATE INDEX stale_alerts ON alerts (id) WHERE measure = 'stale' AND deleted IS NULL;
    """,
]

LATEST = len(MIGRATIONS)


SchemaError = errors.SchemaError


def check(found: int) -> None:
    """Refuse a schema other than LATEST, saying which way to fix it."""
    schema_checks.check(found, LATEST)


def deployment_id(conn: sqlite3.Connection) -> str:
    """The database's deployment id (made by migration 3)."""
    return stored_deployment(conn.execute("SELECT id FROM deployment").fetchone())


def version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(found[0] or 0)


def statements(script: str) -> list[str]:
    """A migration's statements, one by one (`executescript` would commit the transaction the
    migrations run in). Split at each `;` that ends a complete statement, so a trigger's body
    (`BEGIN ...; END`) stays whole."""
    found: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending)
            pending = ""
    if pending.strip(" \n;"):
        found.append(pending)
    return found


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the latest version; return how many migrations ran."""
    current = version(conn)
    if current > LATEST:
        raise SchemaError(schema_checks.newer(current, LATEST))
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = version(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        for number in range(current + 1, LATEST + 1):
            migration = MIGRATIONS[number - 1]
            if callable(migration):
                migration(conn)
            else:
                for statement in statements(migration):
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return LATEST - current
