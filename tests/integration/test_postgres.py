"""What only the PostgreSQL storage has to show: writers in several threads and processes sharing
one database, versions seen across processes, outages, and migrations run by processes at once.

Each test gets a fresh schema in the test database (skipped, or failed with CI=true, when
PostgreSQL is not reachable).
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.backends import pg_url as url_for_schema
from tests.backends import schema_of
from tests.integration.conftest import DEFAULT_NOW
from tests.integration.support import FakeClock, Sql, ev, fig, figures
from tests.proxy import CuttableProxy
from voxmeter.adapters.postgres import PostgresStorage, schema
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.meters import MeterState
from voxmeter.errors import Unavailable
from voxmeter.service.context import Context
from voxmeter.service.ingest import check_batch, ingest_batch
from voxmeter.service.tenancy import create_operation

WORKERS_PROCESSES = 3
THREADS = 2
ROUNDS = 5


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStorage]:
    store = PostgresStorage(pg_url)
    store.migrate()
    yield store
    store.close()


def _batch(rng: random.Random, tag: str) -> list:
    """Shared ids (every writer sends some of the same ones) over four aggregations, plus one
    id of this batch's own."""
    day = "2026-05-0{}T10:00:00Z"
    batch = [
        ev(f"id-{n}", "rsync", day.format(1 + n % 9), rng.randrange(1, 10**6))
        for n in rng.sample(range(120), 25)
    ]
    batch += [
        ev(f"lvl-{n}", "agent_script", day.format(1 + n % 9), rng.randrange(1, 500))
        for n in rng.sample(range(40), 5)
    ]
    batch += [
        ev(f"sub-{n}", "active_agents", day.format(1 + n % 9), None, f"agent-{n % 23}")
        for n in rng.sample(range(60), 8)
    ]
    batch.append(ev(f"own-{tag}", "interactions", "2026-05-03T00:00:00Z"))
    rng.shuffle(batch)
    return batch


def _ingest_rounds(ctx: Context, op_id: int, worker: str) -> list[tuple[int, int, int]]:
    """ROUNDS batches from one writer: (accepted, duplicates, sent) of each."""
    op = ctx.storage.operation(op_id)
    assert op is not None
    rng = random.Random(worker)
    out = []
    for round_ in range(ROUNDS):
        batch = _batch(rng, f"{worker}-{round_}")
        result = ingest_batch(ctx, op, batch)
        out.append((result.accepted, result.duplicates, len(batch)))
    return out


def _threads(ctx: Context, op_id: int, name: str) -> list[tuple[int, int, int]]:
    results: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results.extend(_ingest_rounds(ctx, op_id, f"{name}-t{n}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _process_worker(args: tuple[str, str, int, str]) -> list[tuple[int, int, int]]:
    """Runs in a child process: its own storage (own connections) over the same database."""
    url, catalog_path, op_id, name = args
    store = PostgresStorage(url)
    try:
        clock = FakeClock(DEFAULT_NOW)
        ctx = Context(storage=store, catalog=Catalog.load(Path(catalog_path)), clock=clock)
        return _threads(ctx, op_id, name)
    finally:
        store.close()


def test_writers_in_threads_and_processes_store_each_id_once_with_exact_figures(
    pg_url: str, pg: PostgresStorage, unique_catalog: Catalog, tmp_path: Path, clock: FakeClock
) -> None:
    ctx = Context(storage=pg, catalog=unique_catalog, clock=clock)
    op = create_operation(ctx, "acme", "9901", "UTC")
    other = create_operation(ctx, "globex", "9901", "UTC")  # written to at the same time
    catalog_path = str(tmp_path / "catalog.json")
    spawn = multiprocessing.get_context("spawn")
    jobs = [(pg_url, catalog_path, op.id, f"p{n}") for n in range(WORKERS_PROCESSES)]
    with spawn.Pool(WORKERS_PROCESSES) as pool:
        pending = pool.map_async(_process_worker, jobs)
        # This process writes too, from threads of its own, to both operations.
        mine = _threads(ctx, op.id, "main")
        _threads(ctx, other.id, "main")
        theirs = [r for rs in pending.get(timeout=240) for r in rs]
    results = mine + theirs
    writers = (WORKERS_PROCESSES + 1) * THREADS
    assert len(results) == writers * ROUNDS
    accepted = sum(a for a, _, _ in results)
    assert sum(a + d for a, d, _ in results) == sum(n for _, _, n in results)

    sql = Sql(pg_url)
    try:
        where = "WHERE operation_id = ?"
        stored = sql(f"SELECT count(*), count(DISTINCT id) FROM events {where}", (op.id,))
        assert stored == [(accepted, accepted)]
        own = sql(f"SELECT count(*) FROM events {where} AND id LIKE 'own-%'", (op.id,))
        assert own == [(writers * ROUNDS,)]

        def stored_of(api: str, what: str) -> int:
            row = sql(
                f"SELECT {what} FROM events e JOIN products p ON p.id = e.product_id"
                f" {where} AND p.api = ?",
                (op.id, api),
            )
            return int(row[0][0] or 0)

        expected = {
            "rsync": str(stored_of("rsync", "sum(quantity)") // 10**6),
            "agent_script": str(stored_of("agent_script", "max(quantity)") // 10**6),
            "active_agents": str(stored_of("active_agents", "count(DISTINCT subject)")),
            "interactions": str(writers * ROUNDS),
        }
    finally:
        sql.close()
    assert figures(ctx, op, "2026-05", list(expected)) == expected
    # Another storage (another process, say) reads the same figures.
    fresh = PostgresStorage(pg_url)
    try:
        other_ctx = Context(storage=fresh, catalog=unique_catalog, clock=clock)
        assert figures(other_ctx, op, "2026-05", list(expected)) == expected
    finally:
        fresh.close()


def test_insert_new_returns_exactly_the_new_events_in_order(pg: PostgresStorage) -> None:
    def event(event_id: str, quantity: int) -> UsageEvent:
        return UsageEvent(event_id, "rsync", 1_777_680_000_000_000, 2026 * 12 + 4, quantity, None)

    with pg.write() as tx:
        op = tx.create_operation("acme", "9901", "UTC", 1, 0)
    with pg.write() as tx:
        assert tx.insert_new(op.id, [event("a", 1), event("b", 2)], 5) == [
            event("a", 1),
            event("b", 2),
        ]
    with pg.write() as tx:
        # Stored ids are skipped; inside the batch too, the first copy wins.
        batch = [event("c", 3), event("a", 9), event("d", 4), event("c", 8), event("b", 9)]
        assert tx.insert_new(op.id, batch, 6) == [event("c", 3), event("d", 4)]
        assert tx.known_ids(op.id, ["a", "c", "x"]) == {"a", "c"}
    listed = list(pg.events(op.id, 0, 2**62, None, None, 10))
    assert [(e.id, e.quantity, e.received) for e in listed] == [
        ("a", 1, 5),
        ("b", 2, 5),
        ("c", 3, 6),
        ("d", 4, 6),
    ]
    assert [e.seq for e in listed] == sorted(e.seq for e in listed)

    # A failed transaction stores nothing and takes no id.
    def abandoned() -> None:
        with pg.write() as tx:
            tx.insert_new(op.id, [event("e", 1)], 7)
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError):
        abandoned()
    with pg.write() as tx:
        assert tx.known_ids(op.id, ["e"]) == set()
        tx.mark_voided(op.id, listed[1].seq, 99)  # by seq alone, without event_for_void first
    assert [e.voided for e in pg.events(op.id, 0, 2**62, None, None, 10)] == [None, 99, None, None]


def test_meter_totals_beyond_64_bits_stay_exact(pg: PostgresStorage) -> None:
    with pg.write() as tx:
        op = tx.create_operation("acme", "9901", "UTC", 1, 0)
    huge = 2**64 * 10**6 + 123_456
    month = 2026 * 12 + 4
    with pg.write() as tx:
        tx.save_meters(op.id, {("rsync", month): MeterState(huge)})
        assert tx.meters(op.id, [("rsync", month)]) == {("rsync", month): MeterState(huge)}
    assert pg.meter_states(op.id, month, ["rsync"]) == {"rsync": MeterState(huge)}
    assert pg.month_meters(op.id, month, ("rsync",), ()).states == {"rsync": MeterState(huge)}
    with pg.write() as tx:
        tx.freeze(op.id, month, {"rsync": huge * 3}, 1)
    assert pg.frozen_figures(op.id, month) == {"rsync": huge * 3}


def test_version_follows_commits_of_other_processes(
    pg_url: str, pg: PostgresStorage, catalog: Catalog, clock: FakeClock
) -> None:
    ctx = Context(storage=pg, catalog=catalog, clock=clock)
    op = create_operation(ctx, "acme", "9901", "UTC")
    other = PostgresStorage(pg_url)
    try:
        other_ctx = Context(storage=other, catalog=catalog, clock=clock)
        assert fig(ctx, op, "rsync", "2026-05") == "0"  # read (and cached) before the write
        before = pg.version()
        # A write transaction that only reads leaves the version alone.
        assert check_batch(ctx, op, [ev("x", "rsync", "2026-05-02T00:00:00Z", "1")]) == []
        time.sleep(0.002)
        assert pg.version() == before

        ingest_batch(other_ctx, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "1.5")])
        time.sleep(0.002)  # other processes' commits show within a millisecond
        seen = pg.version()
        assert seen != before
        assert seen[0] == before[0]  # not one of this process's commits
        assert fig(ctx, op, "rsync", "2026-05") == "1.5"

        # This process's own commit shows at once, without waiting.
        ingest_batch(ctx, op, [ev("b", "rsync", "2026-05-02T00:00:00Z", "1")])
        assert pg.version()[0] == seen[0] + 1
        assert fig(ctx, op, "rsync", "2026-05") == "2.5"
        time.sleep(0.002)
        assert fig(other_ctx, op, "rsync", "2026-05") == "2.5"
    finally:
        other.close()


@pytest.mark.serial
def test_an_unreachable_database_is_unavailable_at_once() -> None:
    store = PostgresStorage("postgresql://postgres@127.0.0.1:1/voxmeter_test")
    try:
        start = time.monotonic()
        with pytest.raises(Unavailable):
            store.schema_version()
        with pytest.raises(Unavailable):
            store.version()
        with pytest.raises(Unavailable):
            store.operations()
        with pytest.raises(Unavailable), store.write() as tx:
            tx.closed_months(1)
        assert time.monotonic() - start < 3
    finally:
        store.close()


@pytest.mark.serial
def test_service_resumes_by_itself_when_the_database_comes_back(
    pg_url: str, pg: PostgresStorage, catalog: Catalog, clock: FakeClock
) -> None:
    port = urlsplit(pg_url).port or 5432
    proxy = CuttableProxy(("127.0.0.1", port))
    store = PostgresStorage(url_for_schema(schema_of(pg_url), port=proxy.port))
    try:
        ctx = Context(storage=store, catalog=catalog, clock=clock)
        op = create_operation(ctx, "acme", "9901", "UTC")
        assert ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "1")]).accepted == 1
        assert fig(ctx, op, "rsync", "2026-05") == "1"

        proxy.cut()  # every open connection dies, new ones are refused
        start = time.monotonic()
        for _ in range(3):
            with pytest.raises(Unavailable):
                ingest_batch(ctx, op, [ev("b", "rsync", "2026-05-02T00:00:00Z", "2")])
        with pytest.raises(Unavailable):
            store.operations()
        time.sleep(0.002)
        with pytest.raises(Unavailable):
            fig(ctx, op, "rsync", "2026-05")
        assert time.monotonic() - start < 3

        proxy.restore()
        assert ingest_batch(ctx, op, [ev("b", "rsync", "2026-05-02T00:00:00Z", "2")]).accepted == 1
        assert fig(ctx, op, "rsync", "2026-05") == "3"
        assert [o.name for o in store.operations()] == ["acme"]
    finally:
        store.close()
        proxy.close()


def test_migrating_from_several_processes_at_once_runs_each_migration_once(
    pg_url: str,
) -> None:
    stores = [PostgresStorage(pg_url) for _ in range(4)]
    try:
        with pytest.raises(schema.SchemaError) as unmigrated:
            stores[0].check_schema()
        assert "version 0" in str(unmigrated.value)
        assert "migrate" in str(unmigrated.value)

        with ThreadPoolExecutor(len(stores)) as pool:  # one connection each, as processes have
            ran = sorted(pool.map(lambda s: s.migrate(), stores))
        assert ran == [0, 0, 0, schema.LATEST]
        assert stores[0].migrate() == 0  # and again: a no-op
        for store in stores:
            assert store.schema_version() == schema.LATEST
            store.check_schema()
    finally:
        for store in stores:
            store.close()
    sql = Sql(pg_url)
    try:
        assert sql("SELECT version FROM schema_version ORDER BY version") == [
            (n,) for n in range(1, schema.LATEST + 1)
        ]
        tables = {
            r[0]
            for r in sql(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        }
    finally:
        sql.close()
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


def test_a_database_newer_than_this_release_is_refused(pg_url: str, pg: PostgresStorage) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (schema.LATEST + 1,))

    with pytest.raises(schema.SchemaError) as caught:
        pg.migrate()
    message = str(caught.value)
    assert f"version {schema.LATEST + 1}" in message
    assert "newer" in message
    assert "upgrade voxmeter" in message

    again = PostgresStorage(pg_url)
    try:
        with pytest.raises(schema.SchemaError) as checked:
            again.check_schema()
    finally:
        again.close()
    assert f"version {schema.LATEST + 1}" in str(checked.value)
    assert "upgrade voxmeter" in str(checked.value)
    # Nothing was changed by the refusals.
    assert pg.schema_version() == schema.LATEST + 1


@pytest.mark.serial
def test_a_full_pool_makes_callers_wait_then_refuses_them(pg_url: str, pg: PostgresStorage) -> None:
    # The wait also bounds opening the first connection: long enough for a loaded machine.
    store = PostgresStorage(pg_url, pool_size=1, pool_wait=2.0)
    try:
        assert store.operations() == []
        with store.write() as tx:
            tx.closed_months(1)  # the one connection is this transaction's until it ends
            start = time.monotonic()
            with pytest.raises(Unavailable, match="BUSY"):
                store.operations()
            assert 2.0 <= time.monotonic() - start < 10
        assert store.operations() == []  # given back: the next caller gets it
    finally:
        store.close()
    with pytest.raises(Unavailable, match="CLOSED"):
        store.operations()
