"""Wiring: storage, context and app state from settings; the only place that picks adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voxmeter.adapters.limits import InProcessLimiter
from voxmeter.adapters.sqlite import SqliteStorage
from voxmeter.adapters.sqlite.storage import path_from_url
from voxmeter.config import Settings
from voxmeter.domain.catalog import Catalog
from voxmeter.entrypoints.http.state import AppState
from voxmeter.errors import ConfigError
from voxmeter.service.context import Context
from voxmeter.service.tenancy import Authenticator


def open_storage(url: str, *, migrate: bool = True, cache_mib: int = 16) -> SqliteStorage:
    """Open the database named by `url`; the embedded SQLite database is created on first use."""
    storage = _raw_storage(url, cache_mib)
    if migrate:
        storage.migrate()
    storage.check_schema()
    return storage


def migrate(url: str) -> tuple[int, int]:
    """Apply pending migrations; return (schema version, migrations applied)."""
    storage = _raw_storage(url)
    ran = storage.migrate()
    return storage.schema_version(), ran


def _raw_storage(url: str, cache_mib: int = 16) -> SqliteStorage:
    if url.startswith("sqlite:///"):
        return SqliteStorage(path_from_url(url), cache_mib=cache_mib)
    raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///path/to/file.db")


def context(settings: Settings, storage: SqliteStorage | None = None) -> Context:
    return Context(
        storage=storage or open_storage(settings.database_url, cache_mib=settings.sqlite_cache_mib),
        catalog=Catalog.load(settings.catalog_path),
        grace_days=settings.grace_days,
    )


def app_state(settings: Settings, ctx: Context) -> AppState:
    """The HTTP app's shared state with the embedded (in-process) limiter."""
    limiter = InProcessLimiter(ctx.storage)
    today = datetime.now(UTC).date()
    limiter.restore([(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1)])
    return AppState(ctx=ctx, settings=settings, limiter=limiter, auth=Authenticator(ctx))
