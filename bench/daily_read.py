"""Does a month's daily breakdown cost the same at millions of events as at 10k?

Fills two databases of one kind (SQLite files, or PostgreSQL databases) with events spread
evenly over May 2026 across six products of every summing and level kind, then times what
`GET /api/v2/daily?api=all` does after admission (the day meters read in one snapshot, the
figures of 27 products x 31 days, the reply encoded) alternately on both, so machine noise hits
both alike. No cache is involved: the endpoint has none.

    .venv/bin/python -m bench.daily_read --large-events 2000000
    .venv/bin/python -m bench.daily_read --large-events 2000000 --backend postgres
    .venv/bin/python -m bench.daily_read --large sqlite:////tmp/voxmeter-bench-XXXX/bench.db

`--large` reuses a database this script filled before (its `bench` operation), so a ten-million
event database is filled once.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.common import cpu_note, fresh_db, fresh_postgres, write_json
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.http.daily import daily_reply
from voxmeter.entrypoints.http.replies import encode
from voxmeter.entrypoints.wire.codec import EventIn
from voxmeter.service import tenancy
from voxmeter.service.context import Context
from voxmeter.service.daily import daily_figures
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.ports import Storage

MONTH = Month(2026, 5)
START = datetime(2026, 5, 1, tzinfo=UTC)
SPAN = timedelta(days=31) - timedelta(seconds=1)
PRODUCTS = [
    ("ivr_minutes", "1.5"),
    ("rsync", "0.25"),
    ("interactions", "1"),
    ("agent_script", "7"),
    ("tts_chars", "120"),
    ("pbx_licenses", "12"),
]
BATCH = 10_000


def fixed_clock() -> int:
    """The last evening of May 2026: the whole month is open and shown."""
    return int(datetime(2026, 5, 31, 23, 59, tzinfo=UTC).timestamp() * 1_000_000)


def context(db: str) -> tuple[Context[Storage], Operation]:
    ctx = bootstrap.context(Settings(database_url=db))
    ctx = Context(storage=ctx.storage, catalog=ctx.catalog, clock=fixed_clock)
    try:
        op = tenancy.find_operation(ctx, "bench", "9901")
    except Exception:
        op = tenancy.create_operation(ctx, "bench", "9901", "UTC", 1_000_000)
    return ctx, op


def seed(db: str, events: int) -> None:
    """`events` time-ordered events over the month, in batches of 10,000."""
    ctx, op = context(db)
    step = SPAN / events
    started = time.perf_counter()
    for first in range(0, events, BATCH):
        batch = []
        for i in range(first, min(events, first + BATCH)):
            api, quantity = PRODUCTS[i % len(PRODUCTS)]
            at = START + step * i
            batch.append(
                EventIn(id=f"s-{i:010d}", product=api, time=at, quantity=Decimal(quantity))
            )
        ingest_batch(ctx, op, batch)  # type: ignore[arg-type]
        if first and first % 1_000_000 == 0:
            rate = first / (time.perf_counter() - started)
            print(f"  seeded {first:,} events ({rate:,.0f}/s)", flush=True)
    ctx.storage.close()


def read_once(ctx: Context[Storage], op: Operation) -> int:
    found = daily_figures(ctx, op, list(ctx.catalog), MONTH.index)
    reply = daily_reply(found, "all", f"Information found for {MONTH}")
    encode(reply)
    return len(reply.data)


def count_events(db: str) -> int:
    if db.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    import psycopg

    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--large", default=None, help="a database this script filled before")
    parser.add_argument("--large-events", type=int, default=1_000_000)
    parser.add_argument("--small-events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    fresh = fresh_postgres if args.backend == "postgres" else fresh_db
    small_db = fresh()
    seed(small_db, args.small_events)
    large_db = args.large
    if large_db is None:
        large_db = fresh()
        print(f"filling {large_db} with {args.large_events:,} events", flush=True)
        seed(large_db, args.large_events)
    targets = {"small": context(small_db), "large": context(large_db)}
    sizes = {name: read_once(*target) for name, target in targets.items()}
    assert sizes["small"] == sizes["large"] == 27 * 31, sizes  # the same rows
    times: dict[str, list[float]] = {"small": [], "large": []}
    for _ in range(args.rounds):
        for name, (ctx, op) in targets.items():
            for _ in range(args.per_round):
                start = time.perf_counter()
                read_once(ctx, op)
                times[name].append((time.perf_counter() - start) * 1e6)
    events = {"small": count_events(small_db), "large": count_events(large_db)}
    print(f"daily?api=all for {MONTH} (27 products x 31 days), interleaved, {cpu_note()}")
    for name in ("small", "large"):
        print(
            f"{name}: {events[name]:>12,} events  p50 {pct(times[name], 0.5):8.1f} us  "
            f"p99 {pct(times[name], 0.99):8.1f} us"
        )
    ratio = pct(times["large"], 0.5) / pct(times["small"], 0.5)
    print(f"p50 ratio large/small: {ratio:.2f}")
    write_json(
        args.json,
        {
            "bench": "daily_read",
            "backend": args.backend,
            **{
                f"{name}_{key}": value
                for name in ("small", "large")
                for key, value in (
                    ("events", events[name]),
                    ("p50_us", pct(times[name], 0.5)),
                    ("p99_us", pct(times[name], 0.99)),
                )
            },
            "ratio": ratio,
        },
    )


if __name__ == "__main__":
    main()
