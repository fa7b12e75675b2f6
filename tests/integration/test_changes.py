"""PostgreSQL's change notifications (adapters/postgres/changes.py): every committed write of a
figure's table, whoever makes it, advances a listening process's generation; a rolled-back one
does not; while the listener is not connected the generation is unknown (None), and it comes
back as a new one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from tests.backends import pg_url as pg_url_via
from tests.backends import schema_of
from tests.proxy import CuttableProxy
from voxmeter.adapters.postgres import PostgresStorage
from voxmeter.adapters.postgres.changes import ChangeListener
from voxmeter.domain.catalog import Catalog
from voxmeter.entrypoints.wire.codec import EventIn
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import create_operation

WAIT = 10.0  # seconds at most for a notification or a reconnection to arrive


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def _listening(listener: ChangeListener, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.get_running_loop().create_task(listener.run())
    try:
        await _until(lambda: listener.generation is not None, "the listener did not connect")
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_every_committed_write_of_a_figure_advances_the_generation(pg_url: str) -> None:
    storage = PostgresStorage(pg_url)
    storage.migrate()
    listener = storage.change_listener()
    ctx = Context(storage=storage, catalog=Catalog.load())
    op = create_operation(ctx, "acme", "9901", "UTC")

    async def body() -> None:
        async def advanced_by(write: Callable[[], None]) -> None:
            before = listener.generation
            await asyncio.to_thread(write)
            await _until(lambda: listener.generation != before, "no notification")

        event = EventIn(
            id="e1", product="ivr_minutes", time=datetime.now(UTC), quantity=Decimal("1.5")
        )
        await advanced_by(lambda: ingest_batch(ctx, op, [event]))  # type: ignore[arg-type]

        def other_program(sql: str) -> None:
            with psycopg.connect(pg_url) as conn:
                conn.execute(sql)

        await advanced_by(lambda: other_program("UPDATE meters SET total = total + 1"))
        await advanced_by(
            lambda: other_program(f"INSERT INTO closed_months VALUES ({op.id}, 1, 0)")
        )
        # A rolled-back write notifies nobody.
        before = listener.generation

        def rolled_back() -> None:
            with psycopg.connect(pg_url) as conn:
                conn.execute("UPDATE meters SET total = total + 1")
                conn.rollback()

        await asyncio.to_thread(rolled_back)
        await asyncio.sleep(0.3)
        assert listener.generation == before

    try:
        asyncio.run(_listening(listener, body))
    finally:
        storage.close()


def test_a_lost_connection_makes_the_generation_unknown_until_a_new_one(pg_url: str) -> None:
    storage = PostgresStorage(pg_url)
    storage.migrate()
    deployment = storage.deployment_id()
    storage.close()
    proxy = CuttableProxy(("127.0.0.1", 5432))
    through = PostgresStorage(pg_url_via(schema_of(pg_url), port=proxy.port))
    listener = ChangeListener(through._pool.conninfo, deployment, timeout=1.0)

    async def body() -> None:
        first = listener.generation
        proxy.cut()
        await _until(lambda: listener.generation is None, "a lost connection went unnoticed")
        proxy.restore()
        await _until(lambda: listener.generation is not None, "the listener did not reconnect")
        assert listener.generation != first  # what was cached before is never used again

    try:
        asyncio.run(_listening(listener, body))
    finally:
        through.close()
        proxy.close()
