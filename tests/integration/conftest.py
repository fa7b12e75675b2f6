"""Fixtures: a real, migrated database per test (a SQLite file, and a PostgreSQL schema), a fake
clock and a Context over each; and the in-memory fake of tests/fakes.py, which must keep the
same contract.

Every test that uses `storage` (or `ctx`) runs once per backend (the fake's variant is left out
where a test reads the database with SQL). PostgreSQL is the test database
of tests/backends.py: unreachable, it skips those variants with the reason printed (with CI=true
it fails them). Tests about the SQLite file itself are marked `sqlite_only`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import pytest

from tests.backends import pg_schema
from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, Sql
from voxmeter.adapters.postgres import PostgresStorage
from voxmeter.adapters.sqlite import SqliteStorage
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.ports import Database
from voxmeter.service.tenancy import create_operation

#: Mid-May 2026 (UTC): May is the open month; April's 3-day grace period is over.
DEFAULT_NOW = "2026-05-15T12:00:00Z"
BACKENDS = ["sqlite", "postgres", "memory"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: about the SQLite file itself; not run on PostgreSQL"
    )


def _left_out(item: pytest.Item, backend: str | None) -> bool:
    if backend == "postgres":
        return item.get_closest_marker("sqlite_only") is not None
    if backend == "memory":
        return item.get_closest_marker("sqlite_only") is not None or "sql" in getattr(
            item, "fixturenames", ()
        )
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the PostgreSQL variant of tests marked `sqlite_only`, and the in-memory fake's
    variant of those and of tests reading the database with SQL (the fake has none)."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("db_backend") if callspec else None
        (drop if _left_out(item, backend) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@dataclasses.dataclass(frozen=True)
class DbUnderTest:
    """Where the test's data lives: `url` opens more storages over it (other processes)."""

    backend: str
    url: str
    path: Path | None = None
    memory: MemoryDatabase | None = None

    def open(self) -> Database:
        if self.memory is not None:
            return self.memory
        if self.path is not None:
            return SqliteStorage(str(self.path))
        return PostgresStorage(self.url)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "voxmeter.db"


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(db_backend: str, db_path: Path) -> Iterator[DbUnderTest]:
    if db_backend == "sqlite":
        yield DbUnderTest("sqlite", f"sqlite:///{db_path}", db_path)
        return
    if db_backend == "memory":
        yield DbUnderTest("memory", "memory:", memory=MemoryDatabase())
        return
    with pg_schema() as url:
        yield DbUnderTest("postgres", url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL over a fresh, empty schema (for PostgreSQL-only tests)."""
    with pg_schema() as url:
        yield url


@pytest.fixture
def sql(database: DbUnderTest) -> Iterator[Sql]:
    """`sql("SELECT ... WHERE id = ?", (x,))`: read the test's database directly, whichever
    backend, with a connection of the test's own."""
    runner = Sql(database.url)
    yield runner
    runner.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DEFAULT_NOW)


@pytest.fixture
def storage(database: DbUnderTest) -> Iterator[Database]:
    store = database.open()
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
def unique_catalog(tmp_path: Path) -> Catalog:
    """The packaged catalog plus a 28th product aggregated as `unique`, loaded from a file."""
    packaged = resources.files("voxmeter.domain").joinpath("products.json")
    doc = json.loads(packaged.read_text("utf-8"))
    doc["products"].append(
        {
            "number": 28,
            "api": "active_agents",
            "title": "Active agents",
            "unit": "agents",
            "aggregation": "unique",
        }
    )
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(doc), "utf-8")
    return Catalog.load(path)


@pytest.fixture
def ctx(storage: Database, catalog: Catalog, clock: FakeClock) -> Context:
    return Context(storage=storage, catalog=catalog, grace_days=3, clock=clock)


@pytest.fixture
def make_ctx(ctx: Context) -> Callable[..., Context]:
    """The same storage and clock with another grace period and/or catalog."""

    def make(grace_days: int | None = None, catalog: Catalog | None = None) -> Context:
        changes: dict[str, object] = {}
        if grace_days is not None:
            changes["grace_days"] = grace_days
        if catalog is not None:
            changes["catalog"] = catalog
        return dataclasses.replace(ctx, **changes)

    return make


@pytest.fixture
def op(ctx: Context) -> Operation:
    return create_operation(ctx, "acme", "9901", "UTC")
