"""Schema migrations on real SQLite files: fresh databases, reopening, and a database from the
future. (PostgreSQL's migrations are tested in test_postgres.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.support import ev, fig, query
from voxmeter.adapters.sqlite import SqliteStorage, schema
from voxmeter.bootstrap import migrate, open_storage
from voxmeter.domain.catalog import Catalog
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import create_operation

pytestmark = pytest.mark.sqlite_only


def test_a_fresh_database_gets_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "fresh.db"
    storage = open_storage(f"sqlite:///{path}")
    try:
        assert storage.schema_version() == schema.LATEST
        storage.check_schema()
    finally:
        storage.close()
    assert path.exists()
    assert query(path, "SELECT version FROM schema_version ORDER BY version") == [
        (n,) for n in range(1, schema.LATEST + 1)
    ]
    tables = {r[0] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "operations",
        "tokens",
        "events",
        "meters",
        "subjects",
        "closed_months",
        "frozen_figures",
        "request_counts",
        "settings",
        "schema_version",
    } <= tables
    # Migrating again is a no-op.
    assert migrate(f"sqlite:///{path}") == (schema.LATEST, 0)
    assert query(path, "SELECT count(*) FROM schema_version") == [(schema.LATEST,)]


def test_data_survives_reopening(tmp_path: Path, clock) -> None:
    path = tmp_path / "keep.db"
    first = open_storage(f"sqlite:///{path}")
    ctx = Context(storage=first, catalog=Catalog.load(), clock=clock)
    op = create_operation(ctx, "acme", "9901", "UTC")
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-01T00:00:00Z", "2.5")])
    first.close()

    second = open_storage(f"sqlite:///{path}")
    try:
        ctx = Context(storage=second, catalog=Catalog.load(), clock=clock)
        assert second.schema_version() == schema.LATEST
        assert second.operations() == [op]
        assert fig(ctx, op, "rsync", "2026-05") == "2.5"
        assert (
            ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-01T00:00:00Z", "9")]).duplicates == 1
        )
    finally:
        second.close()


def test_a_database_newer_than_this_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SqliteStorage(str(path)).migrate()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (schema.LATEST + 1,))
    conn.commit()
    conn.close()

    with pytest.raises(schema.SchemaError) as caught:
        open_storage(f"sqlite:///{path}")
    message = str(caught.value)
    assert f"version {schema.LATEST + 1}" in message
    assert "newer" in message
    assert "upgrade voxmeter" in message

    with pytest.raises(schema.SchemaError) as unmigrated:
        open_storage(f"sqlite:///{path}", create=False)
    assert f"version {schema.LATEST + 1}" in str(unmigrated.value)
    # Nothing was changed by the refusals.
    assert query(path, "SELECT max(version) FROM schema_version") == [(schema.LATEST + 1,)]


def test_an_unmigrated_database_is_refused_without_migrate(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    with pytest.raises(schema.SchemaError) as caught:
        open_storage(f"sqlite:///{path}", create=False)
    assert "version 0" in str(caught.value)
    assert "migrate" in str(caught.value)


def _v1_copy(source: Path, target: Path) -> None:
    """A version 1 database (schema made by the v1 SQL) holding `source`'s rows."""
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        for statement in schema.MIGRATIONS[0].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("ATTACH ? AS source", (str(source),))
        for table in ("operations", "products", "events", "meters", "subjects"):
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM source.{table}")
        conn.execute("DETACH source")
    finally:
        conn.close()


def test_version_1_events_keep_their_figures_and_ids_after_upgrading(tmp_path: Path, clock) -> None:
    source = SqliteStorage(str(tmp_path / "source.db"))
    source.migrate()
    ctx = Context(storage=source, catalog=Catalog.load(), clock=clock)
    op = create_operation(ctx, "acme", "9901", "UTC")
    ingest_batch(
        ctx,
        op,
        [
            ev("k2", "rsync", "2026-05-01T00:00:00Z", "2.5"),
            ev("k1", "rsync", "2026-05-02T00:00:00Z", "1"),
            ev("k3", "ivr_minutes", "2026-05-02T00:00:00Z", "0.5"),
        ],
    )
    source.close()
    path = tmp_path / "v1.db"
    _v1_copy(tmp_path / "source.db", path)
    assert query(path, "SELECT count(*) FROM sqlite_master WHERE name = 'events_by_id'") == [(1,)]

    upgraded = SqliteStorage(str(path))
    try:
        assert upgraded.migrate() == schema.LATEST - 1
        ctx = Context(storage=upgraded, catalog=Catalog.load(), clock=clock)
        assert fig(ctx, op, "rsync", "2026-05") == "3.5"
        assert fig(ctx, op, "ivr_minutes", "2026-05") == "1"
        again = ingest_batch(
            ctx,
            op,
            [
                ev("k1", "rsync", "2026-05-03T00:00:00Z", "9"),
                ev("k0", "rsync", "2026-05-03T00:00:00Z", "4"),
                ev("k9", "rsync", "2026-05-03T00:00:00Z", "5"),
            ],
        )
        assert (again.accepted, again.duplicates) == (2, 1)
        assert ingest_batch(ctx, op, [ev("k9", "rsync", "2026-05-04T00:00:00Z", "1")]).duplicates
        assert void_event(ctx, op, "k2")[1] is True
        assert fig(ctx, op, "rsync", "2026-05") == "10"
    finally:
        upgraded.close()
    assert query(path, "SELECT count(*) FROM sqlite_master WHERE name = 'events_by_id'") == [(0,)]
    assert query(path, "SELECT count(*) FROM event_ids") == [(3,)]
