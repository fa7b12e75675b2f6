"""Fixtures for the service layer's unit tests: a Context over the in-memory fake storage."""

from __future__ import annotations

import dataclasses

import pytest

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock
from voxmeter.domain.catalog import Aggregation, Catalog, Product
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.tenancy import create_operation


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock("2026-05-15T12:00:00Z")  # May open; April's 3-day grace period is over


@pytest.fixture
def memory() -> MemoryDatabase:
    db = MemoryDatabase()
    db.migrate()
    return db


@pytest.fixture
def ctx(memory: MemoryDatabase, clock: FakeClock) -> Context[MemoryDatabase]:
    return Context(storage=memory, catalog=Catalog.load(), grace_days=3, clock=clock)


@pytest.fixture
def op(ctx: Context[MemoryDatabase]) -> Operation:
    return create_operation(ctx, "acme", "9901", "UTC")


@pytest.fixture
def unique_ctx(ctx: Context[MemoryDatabase]) -> Context[MemoryDatabase]:
    """The packaged catalog plus a 28th product counted as distinct subjects."""
    extra = Product(28, "agents_seen", "Agents seen", "agents", Aggregation.UNIQUE)
    return dataclasses.replace(ctx, catalog=Catalog([*ctx.catalog, extra]))
