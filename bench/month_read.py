"""Does reading a month cost the same at 10M events as at 10k? Measured without any cache.

Opens two databases (a small one it fills itself, and a large one, e.g. from bench/ingest.py),
and times the storage reads behind one billing request (the month's meter of one product, all
27 products, and the carried-in levels) alternately on both, so machine noise hits both alike.

    .venv/bin/python bench/month_read.py --large sqlite:////tmp/vb-seq/bench.db
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from common import cpu_note, fresh_db, make_tenant
from read import seed

from voxmeter import bootstrap
from voxmeter.adapters.sqlite.storage import SqliteStorage, path_from_url
from voxmeter.config import Settings
from voxmeter.service import tenancy


def reader(db: str) -> tuple[SqliteStorage, int, list[str], list[str]]:
    storage = SqliteStorage(path_from_url(db))
    ctx = bootstrap.context(Settings(database_url=db), storage)
    op = tenancy.find_operation(ctx, "bench", "9901")
    return (
        storage,
        op.id,
        [p.api for p in ctx.catalog],
        [p.api for p in ctx.catalog if p.aggregation.is_level],
    )


def sample(
    target: tuple[SqliteStorage, int, list[str], list[str]], month: int, n: int
) -> list[float]:
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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", required=True, help="database URL with many events")
    parser.add_argument("--small-events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=1000)
    args = parser.parse_args()
    small_db = fresh_db()
    make_tenant(small_db)
    seed(small_db, args.small_events)
    now = datetime.now(UTC)
    month = now.year * 12 + now.month - 1
    small, large = reader(small_db), reader(args.large)
    times: dict[str, list[float]] = {"small": [], "large": []}
    for _ in range(args.rounds):
        times["small"] += sample(small, month, args.per_round)
        times["large"] += sample(large, month, args.per_round)
    events = {
        name: target[0]._reader().execute("SELECT count(*) FROM events").fetchone()[0]
        for name, target in (("small", small), ("large", large))
    }
    print(f"uncached month read, interleaved, {cpu_note()}")
    for name in ("small", "large"):
        print(
            f"{name}: {events[name]:>12,} events  p50 {pct(times[name], 0.5):6.1f} us  "
            f"p99 {pct(times[name], 0.99):6.1f} us"
        )
    ratio = pct(times["large"], 0.5) / pct(times["small"], 0.5)
    print(f"p50 ratio large/small: {ratio:.2f}")


if __name__ == "__main__":
    main()
