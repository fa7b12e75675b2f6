"""Schema migrations on real SQLite files: fresh databases, reopening, and a database from the
future (PostgreSQL's concurrent and refused migrations are tested in test_postgres.py); and the
upgrade that gives a database its deployment id, on both backends, with its limits kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.backends import REDIS_URL, pg_query, redis_prefix
from tests.integration.support import FakeClock, ev, fig, query
from voxmeter.adapters.postgres import PostgresStorage
from voxmeter.adapters.postgres import schema as pg_schema
from voxmeter.adapters.sqlite import SqliteStorage, schema
from voxmeter.bootstrap import limiter as wired_limiter
from voxmeter.bootstrap import migrate, open_storage
from voxmeter.config import Settings
from voxmeter.domain.catalog import Catalog
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.ports import Database
from voxmeter.service.tenancy import create_operation, create_token

DAY = "2026-05-15"

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


def _upgraded_limits_work(url: str, make: Callable[[], Database], clock: FakeClock) -> None:
    """A database made by the previous schema version, holding an operation whose day is one
    request short of its quota (saved counts), upgraded with `migrate` as `voxmeter migrate`
    does: it gets a deployment id, and its limits go on from the saved counts, keyed by it."""
    module = pg_schema if url.startswith("postgresql") else schema
    # the schema as it was before the migration that made the deployment id
    before = next(i for i, sql in enumerate(module.MIGRATIONS) if "TABLE deployment" in sql)
    previous = make()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(module, "LATEST", before)
            assert previous.migrate() == before
        ctx = Context(storage=previous, catalog=Catalog.load(), clock=clock)
        op = create_operation(ctx, "acme", "9901", "UTC", licenses=1)
        token, _ = create_token(ctx, op, "a", [])
        previous.save_request_counts({(token.id, DAY): (op.id, 999)}, {})
        with pytest.raises(Exception, match="deployment"):
            previous.deployment_id()  # no such table before the upgrade
    finally:
        previous.close()
    with pytest.raises(schema.SchemaError, match="migrate"):
        open_storage(url, create=False)

    assert migrate(url) == (module.LATEST, module.LATEST - before)
    upgraded = open_storage(url, create=False)
    try:
        deployment = upgraded.deployment_id()
        assert len(deployment) == 32
        int(deployment, 16)
        assert migrate(url) == (module.LATEST, 0)
        assert upgraded.deployment_id() == deployment  # made once, kept

        with redis_prefix() as prefix:
            ctx = Context(storage=upgraded, catalog=Catalog.load(), clock=clock)
            settings = Settings(database_url=url, redis_url=REDIS_URL, redis_prefix=prefix)
            limiter = wired_limiter(settings, ctx)
            try:
                assert limiter.usage(token.id, op.id, DAY) == (999, 999)
                last = limiter.admit(token.id, op.id, DAY, 2, op.daily_quota)
                assert (last.outcome, last.token_today, last.operation_today) == ("ok", 1000, 1000)
                limiter.release(token.id, last.lease)
                refused = limiter.admit(token.id, op.id, DAY, 2, op.daily_quota)
                assert (refused.outcome, refused.operation_today) == ("quota", 1000)
                limiter.flush()
                assert upgraded.request_counts(DAY, op.id) == {token.id: 1000}
                client = redis.Redis.from_url(REDIS_URL)
                try:
                    keys = sorted(k.decode() for k in client.scan_iter(f"{prefix}*"))
                finally:
                    client.close()
                assert keys == [
                    f"{prefix}:{deployment}:oday:{op.id}:{DAY}",
                    f"{prefix}:{deployment}:tday:{token.id}:{DAY}",
                ]
            finally:
                limiter.close()
    finally:
        upgraded.close()


def test_upgrading_a_sqlite_database_gives_it_a_deployment_id_and_keeps_its_limits(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "previous.db"
    _upgraded_limits_work(f"sqlite:///{path}", lambda: SqliteStorage(str(path)), clock)
    assert query(path, "SELECT count(*) FROM deployment") == [(1,)]


def test_upgrading_a_postgres_database_gives_it_a_deployment_id_and_keeps_its_limits(
    pg_url: str, clock: FakeClock
) -> None:
    _upgraded_limits_work(pg_url, lambda: PostgresStorage(pg_url), clock)
    assert pg_query(pg_url, "SELECT count(*) FROM deployment") == [(1,)]


def test_every_new_database_gets_its_own_deployment_id(tmp_path: Path) -> None:
    ids = set()
    for name in ("one", "two", "three"):
        storage = open_storage(f"sqlite:///{tmp_path / name}.db")
        try:
            ids.add(storage.deployment_id())
        finally:
            storage.close()
    assert len(ids) == 3


def test_a_database_without_its_deployment_id_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "emptied.db"
    open_storage(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM deployment")
    conn.commit()
    conn.close()
    storage = open_storage(f"sqlite:///{path}", create=False)
    try:
        with pytest.raises(schema.SchemaError, match="deployment id"):
            storage.deployment_id()
    finally:
        storage.close()
