"""Wiring: storage, limiter, context and app state from settings; the only place that picks
adapters."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from voxmeter.adapters.limits import InProcessLimiter
from voxmeter.config import Settings
from voxmeter.domain.catalog import Catalog
from voxmeter.entrypoints.http.state import AppState
from voxmeter.errors import ConfigError
from voxmeter.service.context import Context
from voxmeter.service.ports import Database, Limiter, SecretSealing, Storage
from voxmeter.service.tenancy import Authenticator

log = logging.getLogger("voxmeter")

SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")


def open_storage(url: str, *, create: bool = True, cache_mib: int = 16) -> Database:
    """Open the database named by `url`, refusing a schema this release does not know.

    An empty database (schema version 0) gets the current schema when `create` is set, so the
    embedded mode works on first use; any other version than the current one must be brought
    up to date explicitly with `voxmeter migrate`.
    """
    storage = _raw_storage(url, cache_mib)
    try:
        if create and storage.schema_version() == 0:
            storage.migrate()
        storage.check_schema()
    except BaseException:
        storage.close()
        raise
    return storage


def migrate(url: str) -> tuple[int, int]:
    """Apply pending migrations; return (schema version, migrations applied)."""
    storage = _raw_storage(url)
    try:
        ran = storage.migrate()
        return storage.schema_version(), ran
    finally:
        storage.close()


def _raw_storage(url: str, cache_mib: int = 16) -> Database:
    if url.startswith(SQLITE):
        from voxmeter.adapters.sqlite import SqliteStorage
        from voxmeter.adapters.sqlite.storage import path_from_url

        return SqliteStorage(path_from_url(url), cache_mib=cache_mib)
    if url.startswith(POSTGRES):
        from voxmeter.adapters.postgres import PostgresStorage

        return PostgresStorage(url)
    raise ConfigError(
        f"unsupported database URL {_safe(url)!r}: use sqlite:///path/to/file.db "
        "or postgresql://user@host/dbname"
    )


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url
    return url


def context(settings: Settings, storage: Database | None = None) -> Context[Storage]:
    return Context(
        storage=storage or open_storage(settings.database_url, cache_mib=settings.sqlite_cache_mib),
        catalog=Catalog.load(settings.catalog_path),
        grace_days=settings.grace_days,
    )


def limiter(settings: Settings, ctx: Context[Storage]) -> Limiter:
    """Redis-backed limits when a Redis URL is set (shared by every process, keyed by the
    prefix and the database's deployment id), else in-process."""
    if settings.redis_url:
        from voxmeter.adapters.redis_limits import RedisLimiter

        return RedisLimiter(
            settings.redis_url,
            ctx.storage,
            prefix=settings.redis_prefix,
            deployment=ctx.storage.deployment_id(),
        )
    local = InProcessLimiter(ctx.storage)
    today = datetime.now(UTC).date()
    local.restore([(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1)])
    return local


def sealing(settings: Settings) -> SecretSealing | None:
    """The deployment's secret box, or None (logged) when it has no key: mirrors are then not
    swept, and everything else runs."""
    from voxmeter.adapters.secret_box import open_secret_box

    try:
        return open_secret_box(settings.database_url, settings.secret_key)
    except ConfigError as exc:
        log.warning("mirrors will not be swept: %s", exc)
        return None


def app_state(settings: Settings, ctx: Context[Storage]) -> AppState:
    """The HTTP app's shared state. On PostgreSQL with Redis, billing reads are admitted on the
    event loop and cached under Redis's data version (advanced after every commit of this
    process) and the database's change notifications (every writer's commits)."""
    limits = limiter(settings, ctx)
    state = AppState(
        ctx=ctx,
        settings=settings,
        limiter=limits,
        auth=Authenticator(ctx),
        local_reads=settings.database_url.startswith(SQLITE),
        sealing=sealing(settings),
    )
    if settings.redis_url and settings.database_url.startswith(POSTGRES):
        from voxmeter.adapters.postgres import PostgresStorage
        from voxmeter.adapters.redis_limits import RedisLimiter
        from voxmeter.adapters.redis_loop import LoopLimiter

        storage = ctx.storage
        if isinstance(storage, PostgresStorage) and isinstance(limits, RedisLimiter):
            storage.after_commit(limits.data_changed)
            state.loop_limits = LoopLimiter(limits, settings.redis_url)
            state.changes = storage.change_listener()
    return state
