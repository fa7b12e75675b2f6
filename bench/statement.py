"""Statement latency and the invoicing export, with figures for the README.

`latency`: two real embedded servers side by side, one on a month of `--small` events and one of
`--large` events (same products), one request at a time over loopback, the series alternated so
machine noise hits them alike: `/healthz` (what any request costs on this machine now),
`billing.php?api=all` (a cached read served without Starlette), `daily?api=all` and
`statement` on each server. p50/p99 of each, and the ratios: large/small (a statement and a
daily breakdown are read from meters, never from events, so these stay near 1) and
statement/`/healthz` (what the statement itself adds over the machine's load).

`export`: `--operations` operations with a month of usage of every catalog product, then
`voxmeter statement --all --month M` (CSV and JSON alternately) timed as a user runs it, wall
and CPU time of the process.

    .venv/bin/python -m bench.statement latency --small 10000 --large 10000000
    .venv/bin/python -m bench.statement latency --large-db sqlite:////tmp/voxmeter-bench-X/bench.db
    .venv/bin/python -m bench.statement export --operations 10000 [--backend postgres]

The large month is ingested through the service (`ingest_batch`, batches of 10,000, as the
HTTP ingest does after decoding) into the current month; `--large-db` reuses a database this
script filled before, so ten million events are ingested once.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.common import Server, add_backend_option, fresh_db, fresh_postgres, make_tenant
from bench.common import write_json as write_json
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.domain.catalog import Aggregation
from voxmeter.entrypoints.wire.codec import EventIn
from voxmeter.service import tenancy
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.prices import set_price


def _month_start() -> datetime:
    return datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _event(i: int, product: str, aggregation: Aggregation, at: datetime) -> EventIn:
    quantity = None if aggregation is Aggregation.COUNT else Decimal("1.5")
    return EventIn(id=f"e-{i:09d}", product=product, time=at, quantity=quantity)


def seed_month(db: str, name: str, events: int) -> None:
    """`events` events this month spread over every catalog product, in 10,000-event batches."""
    ctx = bootstrap.context(Settings(database_url=db))
    op = tenancy.find_operation(ctx, name, "9901")
    products = [p for p in ctx.catalog if p.aggregation is not Aggregation.UNIQUE]
    start = _month_start()
    span = max(1, int((datetime.now(UTC) - start).total_seconds()) - 120)
    batch: list[EventIn] = []
    for i in range(events):
        p = products[i % len(products)]
        batch.append(_event(i, p.api, p.aggregation, start + timedelta(seconds=i * span // events)))
        if len(batch) == 10_000:
            ingest_batch(ctx, op, batch)  # type: ignore[arg-type]
            batch = []
    if batch:
        ingest_batch(ctx, op, batch)  # type: ignore[arg-type]
    set_price(ctx, None, "ivr_minutes", "USD", tiers=["1000:0.05", "inf:0.03"])
    set_price(ctx, None, "interactions", "USD", unit_price="0.01", included="100")
    ctx.storage.close()


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SERIES = (
    ("healthz", "small", "/healthz"),
    ("billing_all", "small", "/api/v2/billing.php?api=all"),
    ("daily_small", "small", "/api/v2/daily?api=all"),
    ("daily_large", "large", "/api/v2/daily?api=all"),
    ("statement_small", "small", "/api/v2/statement"),
    ("statement_large", "large", "/api/v2/statement"),
)
"""(name, server, path) of each series, taken in this order, round after round."""
WARM_UP = 50
"""Rounds not counted: connections, caches, the first statement of each server."""


def _events(db: str) -> int:
    import sqlite3

    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def _seeded(events: int, db: str | None, label: str) -> tuple[str, str]:
    """A database with `events` events this month (or `db` as it is) and a token for it."""
    if db is None:
        db = fresh_db()
        token = make_tenant(db)[0]
        started = time.perf_counter()
        seed_month(db, "bench", events)
        print(f"{label}: {events:,} events seeded in {time.perf_counter() - started:.0f} s, {db}")
    else:
        token = make_tenant(db)[0]
    return db, token


def latency(small: int, large: int, rounds: int, large_db: str | None) -> dict[str, object]:
    dbs = {"small": _seeded(small, None, "small"), "large": _seeded(large, large_db, "large")}
    servers = {label: Server(db).start() for label, (db, _) in dbs.items()}
    samples: dict[str, list[float]] = {name: [] for name, _, _ in SERIES}
    try:
        conns = {
            name: http.client.HTTPConnection("127.0.0.1", servers[where].port, timeout=30)
            for name, where, _ in SERIES
        }
        for i in range(rounds + WARM_UP):
            for name, where, path in SERIES:
                headers = {"wolkvox-token": dbs[where][1]}
                t0 = time.perf_counter()
                conns[name].request("GET", path, headers=headers)
                reply = conns[name].getresponse()
                body = reply.read()
                elapsed = (time.perf_counter() - t0) * 1000
                assert reply.status == 200, body[:300]
                if i >= WARM_UP:
                    samples[name].append(elapsed)
    finally:
        for server in servers.values():
            server.stop()
    result: dict[str, object] = {
        "small_events": _events(dbs["small"][0]),
        "large_events": _events(dbs["large"][0]),
        "rounds": rounds,
    }
    for name, found in samples.items():
        result[f"{name}_p50_ms"] = round(_pct(found, 0.50), 3)
        result[f"{name}_p99_ms"] = round(_pct(found, 0.99), 3)
    for q in ("p50", "p99"):
        for top, bottom in (
            ("statement_large", "statement_small"),
            ("daily_large", "daily_small"),
            ("statement_small", "healthz"),
            ("statement_small", "billing_all"),
        ):
            ratio = _pct(samples[top], int(q[1:]) / 100) / _pct(samples[bottom], int(q[1:]) / 100)
            result[f"{q}_ratio_{top}_{bottom}"] = round(ratio, 3)
    result["load_average_1min"] = round(os.getloadavg()[0], 1)
    return result


def seed_operations(db: str, count: int) -> None:
    """`count` operations, each with this month's usage of every catalog product."""
    ctx = bootstrap.context(Settings(database_url=db))
    start = _month_start()
    products = [p for p in ctx.catalog if p.aggregation is not Aggregation.UNIQUE]
    for n in range(count):
        op = tenancy.create_operation(ctx, f"op{n:05d}", "9901")
        batch = [
            _event(i, p.api, p.aggregation, start + timedelta(minutes=i))
            for i, p in enumerate(products)
        ]
        ingest_batch(ctx, op, batch)  # type: ignore[arg-type]
    set_price(ctx, None, "ivr_minutes", "USD", tiers=["1000:0.05", "inf:0.03"])
    set_price(ctx, None, "interactions", "USD", volume_tiers=["10:0.02", "inf:0.01"])
    ctx.storage.close()


def export(count: int, backend: str, rounds: int, db: str | None) -> dict[str, object]:
    if db is None:
        db = fresh_postgres() if backend == "postgres" else fresh_db()
        bootstrap.migrate(db)
        started = time.perf_counter()
        seed_operations(db, count)
        print(f"{count} operations seeded in {time.perf_counter() - started:.0f} s in {db}")
    month = f"{_month_start():%Y-%m}"
    timings: dict[str, list[float]] = {"csv": [], "json": []}
    cpu: dict[str, list[float]] = {"csv": [], "json": []}
    for _ in range(rounds):
        for fmt in ("csv", "json"):
            t0 = time.perf_counter()
            cpu0 = _children_cpu()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "voxmeter",
                    "statement",
                    "--all",
                    "--month",
                    month,
                    "--format",
                    fmt,
                    "--db",
                    db,
                ],
                capture_output=True,
                check=True,
            )
            timings[fmt].append(time.perf_counter() - t0)
            cpu[fmt].append(_children_cpu() - cpu0)
            size = len(done.stdout)
            print(f"{fmt}: {timings[fmt][-1]:.2f} s wall, {cpu[fmt][-1]:.2f} s CPU, {size} bytes")
    return {
        "backend": backend,
        "operations": count,
        "products": 27,
        **{f"{fmt}_seconds_best": round(min(t), 2) for fmt, t in timings.items()},
        **{f"{fmt}_seconds_worst": round(max(t), 2) for fmt, t in timings.items()},
        **{f"{fmt}_cpu_seconds_best": round(min(t), 2) for fmt, t in cpu.items()},
        **{f"{fmt}_cpu_seconds_worst": round(max(t), 2) for fmt, t in cpu.items()},
        "load_average_1min": round(os.getloadavg()[0], 1),
    }


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes: on a shared machine the wall
    time depends on what else runs, the CPU time much less."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lat = commands.add_parser("latency")
    lat.add_argument("--small", type=int, default=10_000)
    lat.add_argument("--large", type=int, default=1_000_000)
    lat.add_argument("--large-db", default=None, help="a latency bench's large database")
    lat.add_argument("--rounds", type=int, default=2000, help="requests of each series")
    exp = commands.add_parser("export")
    exp.add_argument("--operations", type=int, default=10_000)
    exp.add_argument("--rounds", type=int, default=2)
    exp.add_argument("--db", default=None, help="an export bench's database, already seeded")
    add_backend_option(exp)
    for sub in (lat, exp):
        sub.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.command == "latency":
        result = latency(args.small, args.large, args.rounds, args.large_db)
    else:
        result = export(args.operations, args.backend, args.rounds, args.db)
    print(result)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
