"""Fixtures: a real, migrated SQLite file per test, a fake clock and a Context over both."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import pytest

from tests.integration.support import FakeClock
from voxmeter.adapters.sqlite import SqliteStorage
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.tenancy import create_operation

#: Mid-May 2026 (UTC): May is the open month; April's 3-day grace period is over.
DEFAULT_NOW = "2026-05-15T12:00:00Z"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "voxmeter.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DEFAULT_NOW)


@pytest.fixture
def storage(db_path: Path) -> Iterator[SqliteStorage]:
    store = SqliteStorage(str(db_path))
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
def ctx(storage: SqliteStorage, catalog: Catalog, clock: FakeClock) -> Context:
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
