"""The real PostgreSQL and Redis the scaled-out tests use, one fresh namespace per use.

Locally a missing service skips those tests with the reason printed; with CI=true it fails them,
so CI never passes by skipping."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest

PG_ADMIN = os.environ.get("VOXMETER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "voxmeter_test"
REDIS_URL = os.environ.get("VOXMETER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, exc: BaseException) -> None:
    reason = f"{what} is not reachable ({exc}); start it (README, Development)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs {reason}")
    pytest.skip(reason)


def _pg_base() -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DATABASE


def require_postgres() -> None:
    """Make sure the test database exists (creating it once), or skip/fail."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)
            ).fetchone()
            if found is None:
                with suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)


def require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)


def pg_url(schema: str, port: int | None = None) -> str:
    """The test database with `schema` first on the search path (optionally via another port,
    e.g. a proxy's)."""
    base = _pg_base()
    if port is not None:
        parts = urlsplit(base)
        base = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    return f"{base}?options={quote(f'-csearch_path={schema}')}"


def schema_of(url: str) -> str:
    return unquote(url.rsplit("search_path%3D", 1)[-1].split("&")[0]).split("=")[-1]


@contextmanager
def pg_schema() -> Iterator[str]:
    """A database URL whose tables live in a fresh schema, dropped afterwards."""
    import psycopg

    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_base(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield pg_url(schema)
    finally:
        with psycopg.connect(_pg_base(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own in the test Redis, whose keys are deleted afterwards."""
    import redis

    require_redis()
    prefix = f"vxtest-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def pg_query(url: str, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read a test database directly, with a connection of the test's own."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, args).fetchall())


def pg_dump_text(url: str) -> bytes:
    """Every row of every table in the URL's schema, as text: what the database holds."""
    import psycopg

    out: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(f'SELECT t::text FROM "{table}" AS t').fetchall()
            out += [str(row[0]) for row in rows]
    return "\n".join(out).encode()
