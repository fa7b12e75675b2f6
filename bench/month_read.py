"""Does reading a month cost the same at 10M events as at 10k? Measured without any cache.

Opens two databases (a small one it fills itself, and a large one, e.g. from bench/ingest.py),
and times the storage reads behind one billing request (the month's meter of one product, all
27 products, and the carried-in levels) alternately on both, so machine noise hits both alike.

    .venv/bin/python -m bench.month_read --large sqlite:////tmp/vb-seq/bench.db
    .venv/bin/python -m bench.month_read --large postgresql://postgres@127.0.0.1/voxbench_...

The small database is a fresh one of the same kind (SQLite file or PostgreSQL database).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from read import seed

from bench.common import cpu_note, fresh_db, fresh_postgres, make_tenant, write_json
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.service import tenancy
from voxmeter.service.ports import Database


def reader(db: str) -> tuple[Database, int, list[str], list[str]]:
    storage = bootstrap.open_storage(db)
    ctx = bootstrap.context(Settings(database_url=db), storage)
    op = tenancy.find_operation(ctx, "bench", "9901")
    return (
        storage,
        op.id,
        [p.api for p in ctx.catalog],
        [p.api for p in ctx.catalog if p.aggregation.is_level],
    )


def sample(target: tuple[Database, int, list[str], list[str]], month: int, n: int) -> list[float]:
    storage, op_id, apis, levels = target
    out = []
    for _ in range(n):
        start = time.perf_counter()
        storage.frozen_figures(op_id, month)
        storage.meter_states(op_id, month, ["ivr_minutes"])
        storage.meter_states(op_id, month, apis)
        storage.carried_levels(op_id, month, levels)
        out.append((time.perf_counter() - start) * 1e6)
    return out


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
    parser.add_argument("--large", required=True, help="database URL with many events")
    parser.add_argument("--small-events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    small_db = fresh_postgres() if args.large.startswith("postgres") else fresh_db()
    make_tenant(small_db)
    seed(small_db, args.small_events)
    now = datetime.now(UTC)
    month = now.year * 12 + now.month - 1
    small, large = reader(small_db), reader(args.large)
    times: dict[str, list[float]] = {"small": [], "large": []}
    for _ in range(args.rounds):
        times["small"] += sample(small, month, args.per_round)
        times["large"] += sample(large, month, args.per_round)
    events = {"small": count_events(small_db), "large": count_events(args.large)}
    print(f"uncached month read, interleaved, {cpu_note()}")
    for name in ("small", "large"):
        print(
            f"{name}: {events[name]:>12,} events  p50 {pct(times[name], 0.5):6.1f} us  "
            f"p99 {pct(times[name], 0.99):6.1f} us"
        )
    ratio = pct(times["large"], 0.5) / pct(times["small"], 0.5)
    print(f"p50 ratio large/small: {ratio:.2f}")
    write_json(
        args.json,
        {
            "bench": "month_read",
            "backend": args.large.split(":", 1)[0],
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
