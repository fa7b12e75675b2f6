"""Bulk-insert strategies for the PostgreSQL storage, compared interleaved on one events table.

Each variant stores 10,000-event batches (random UUID-like ids) the way `insert_new` must: new
ids stored in batch order, ids stored before skipped and reported. Each runs in a transaction
that takes the operation's advisory lock and commits with synchronous_commit on. Measured on an
empty table, then after filling it to `--rows` events. "fresh" batches are all new ids; "dup5"
batches repeat 5% of stored ids at random places (a client retrying part of a batch), which
sends the optimistic variants down their slow path. Wall milliseconds per batch (median), client
CPU milliseconds in brackets: both matter, the server process and PostgreSQL share the cores.

    .venv/bin/python -m bench.pg_insert [--url postgresql://postgres@127.0.0.1/postgres]
        [--rows 1000000] [--rounds 6] [--seconds 110]

Variants (all but `upsert`/`json-upsert` are optimistic: a plain INSERT under a savepoint, and
on a unique violation, roll back to it and insert again with ON CONFLICT DO NOTHING RETURNING):
  copy          COPY (binary) into a temporary staging table, INSERT ... SELECT ORDER BY ord
  unnest        INSERT ... SELECT FROM unnest(arrays) WITH ORDINALITY ORDER BY ord
  json          INSERT ... SELECT FROM jsonb_array_elements(batch encoded by msgspec), the
                adapter's own statements (statements._INSERT_BATCH / _INSERT_FRESH)
  upsert        unnest, always ON CONFLICT DO NOTHING RETURNING id (no savepoint)
  json-upsert   json, always ON CONFLICT DO NOTHING RETURNING id (no savepoint)
  adapter       the whole storage part of one ingest request through PostgresStorage.write():
                closed months, insert_new (json), meters read and saved, commit, version bump
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec
import psycopg
from psycopg import errors, sql
from psycopg.rows import TupleRow

from voxmeter.adapters.postgres import PostgresStorage, schema
from voxmeter.adapters.postgres.storage import _INSERT_BATCH, _INSERT_FRESH
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.meters import MeterState

BATCH = 10_000
PRODUCTS = {"ivr_minutes": 1, "rec_minutes": 2, "tts_chars": 3, "interactions": 4}
APIS = list(PRODUCTS)
OPERATION = 1
MONTH = 2026 * 12 + 4
COLUMNS = "operation_id, id, product_id, time, quantity, subject, received"
STAGING = (
    'CREATE TEMP TABLE IF NOT EXISTS bench_staging (ord integer, id text COLLATE "C",'
    " product_id integer, time bigint, quantity bigint, subject text) ON COMMIT DELETE ROWS"
)
FROM_STAGING = (
    f"INSERT INTO events ({COLUMNS}) SELECT %s, id, product_id, time, quantity, subject, %s"
    " FROM pg_temp.bench_staging ORDER BY ord"
)
FROM_ARRAYS = (
    f"INSERT INTO events ({COLUMNS}) SELECT %s, u.id, u.p, u.t, u.q, u.s, %s"
    " FROM unnest(%b::text[], %b::int4[], %b::int8[], %b::int8[], %b::text[])"
    " WITH ORDINALITY AS u(id, p, t, q, s, ord) ORDER BY u.ord"
)
UPSERT = " ON CONFLICT DO NOTHING RETURNING id"
_encode = msgspec.json.Encoder().encode

Conn = psycopg.Connection[TupleRow]
Insert = Callable[[Conn, list[UsageEvent]], int]


def make_batch(serial: int, stored: list[str], dup_share: float) -> list[UsageEvent]:
    raw = os.urandom(16 * BATCH)
    base = 1_778_000_000_000_000 + serial * BATCH * 1000
    dups = set(range(0, BATCH, int(1 / dup_share))) if dup_share and stored else set()
    events = []
    for i in range(BATCH):
        own = raw[16 * i : 16 * i + 16].hex()
        event_id = stored[(i * 7919) % len(stored)] if i in dups else own
        events.append(UsageEvent(event_id, APIS[i % 4], base + i * 1000, MONTH, i * 13, None))
    stored.extend(e.id for e in events[1:200:2])  # odd places: never a repeated id
    return events


def arrays(events: list[UsageEvent]) -> tuple[object, ...]:
    return (
        [e.id for e in events],
        [PRODUCTS[e.product] for e in events],
        [e.time for e in events],
        [e.quantity for e in events],
        [e.subject for e in events],
    )


def optimistic(conn: Conn, plain: Callable[[], object], upsert: Callable[[], int]) -> int:
    conn.execute("SAVEPOINT batch")
    try:
        plain()
        return -1  # every event was new
    except errors.UniqueViolation:
        conn.execute("ROLLBACK TO SAVEPOINT batch")
        return upsert()
    finally:
        conn.execute("RELEASE SAVEPOINT batch")


def via_copy(conn: Conn, events: list[UsageEvent]) -> int:
    conn.execute(STAGING)
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY pg_temp.bench_staging (ord, id, product_id, time, quantity, subject)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int4", "text", "int4", "int8", "int8", "text"])
        for n, e in enumerate(events):
            copy.write_row((n, e.id, PRODUCTS[e.product], e.time, e.quantity, e.subject))
    args = (OPERATION, 0)
    return optimistic(
        conn,
        lambda: conn.execute(FROM_STAGING, args),
        lambda: len(conn.execute(FROM_STAGING + UPSERT, args).fetchall()),
    )


def via_unnest(conn: Conn, events: list[UsageEvent]) -> int:
    args = (OPERATION, 0, *arrays(events))
    return optimistic(
        conn,
        lambda: conn.execute(FROM_ARRAYS, args),
        lambda: len(conn.execute(FROM_ARRAYS + UPSERT, args).fetchall()),
    )


def _json_args(events: list[UsageEvent]) -> dict[str, Any]:
    return {
        "op": OPERATION,
        "pids": _encode(PRODUCTS).decode(),
        "received": 0,
        "events": _encode(events).decode(),
    }


def via_json(conn: Conn, events: list[UsageEvent]) -> int:
    args = _json_args(events)
    return optimistic(
        conn,
        lambda: conn.execute(_INSERT_BATCH, args),
        lambda: len(conn.execute(_INSERT_FRESH, args).fetchall()),
    )


def via_upsert(conn: Conn, events: list[UsageEvent]) -> int:
    return len(conn.execute(FROM_ARRAYS + UPSERT, (OPERATION, 0, *arrays(events))).fetchall())


def via_json_upsert(conn: Conn, events: list[UsageEvent]) -> int:
    return len(conn.execute(_INSERT_FRESH, _json_args(events)).fetchall())


VARIANTS: dict[str, Insert] = {
    "copy": via_copy,
    "unnest": via_unnest,
    "json": via_json,
    "upsert": via_upsert,
    "json-upsert": via_json_upsert,
}


def store(conn: Conn, insert: Insert, batch: list[UsageEvent]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (OPERATION,))
        new = insert(conn, batch)
    assert new == -1 or 0 < new <= len(batch)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def through_adapter(storage: PostgresStorage, batch: list[UsageEvent]) -> tuple[float, float]:
    """What ingest_batch asks of the storage for one batch (the folding is the service's)."""
    wall, cpu = time.perf_counter(), time.process_time()
    with storage.write() as tx:
        tx.closed_months(OPERATION)
        new = tx.insert_new(OPERATION, batch, 0)
        keys = [(api, MONTH) for api in APIS]
        stored = tx.meters(OPERATION, keys)
        delta = sum(e.quantity for e in new)
        tx.save_meters(
            OPERATION,
            {k: MeterState(stored.get(k, MeterState()).total + delta) for k in keys},
        )
    assert 0 < len(new) <= len(batch)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def fill(conn: Conn, rows: int) -> None:
    """Bring the table to `rows` events quickly (plain COPY, no dedupe)."""
    found = conn.execute("SELECT count(*) FROM events").fetchone()
    have = int(found[0]) if found else 0
    base = 1_700_000_000_000_000
    while have < rows:
        n = min(200_000, rows - have)
        raw = os.urandom(16 * n)
        copy_sql = f"COPY events ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
        with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(["int8", "text", "int4", "int8", "int8", "text", "int8"])
            for i in range(n):
                row = (OPERATION, raw[16 * i : 16 * i + 16].hex(), 1 + i % 4, base + i, i)
                copy.write_row((*row, None, 0))
        have += n
    conn.execute("VACUUM ANALYZE events")


def measure(
    conn: Conn,
    storage: PostgresStorage,
    label: str,
    rounds: int,
    deadline: float,
    stored: list[str],
) -> None:
    names = [*VARIANTS, "adapter"]
    for kind, share in (("fresh", 0.0), ("dup5", 0.05)):
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
                batch = make_batch(len(stored), stored, share)
                if name == "adapter":
                    results[name].append(through_adapter(storage, batch))
                else:
                    results[name].append(store(conn, VARIANTS[name], batch))
            if time.monotonic() > deadline:
                break
        line = "  ".join(
            f"{name} {statistics.median(w for w, _ in values):5.0f}"
            f" [{statistics.median(c for _, c in values):3.0f}]"
            for name, values in results.items()
        )
        print(f"{label:>14} {kind:<5} {line}  (n={len(results['json'])})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=110)
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    name = f"bench_pg_insert_{os.getpid()}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        storage = PostgresStorage(f"{args.url}?options=-csearch_path%3D{name}")
        try:
            conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
            schema.migrate(conn)
            conn.execute(
                "INSERT INTO products (id, api) SELECT unnest(%s::int[]), unnest(%s::text[])",
                (list(PRODUCTS.values()), list(PRODUCTS)),
            )
            stored: list[str] = []
            print("ms per 10k batch, median wall [client CPU]", flush=True)
            measure(conn, storage, "empty table", args.rounds, deadline, stored)
            fill(conn, args.rows)
            measure(conn, storage, f"{args.rows:,} rows", args.rounds, deadline, stored)
        finally:
            storage.close()
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
