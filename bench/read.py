"""Billing read throughput and latency against /healthz, side by side, with wrk.

Starts a real server on a database (a fresh one with `--events` synthetic events, or an existing
one from bench/ingest.py via `--db`), then runs wrk alternately on /healthz and on
billing.php, each wrk thread on its own connection with its own token (the per-token limit is
2 in flight). Requires `wrk` (Debian package `wrk`).

    .venv/bin/python -m bench.read --events 10000
    .venv/bin/python -m bench.read --db sqlite:////tmp/voxmeter-bench-XXXX/bench.db
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bench.common import (
    Server,
    add_backend_option,
    cpu_note,
    fresh_db,
    fresh_postgres,
    make_tenant,
    write_json,
)
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.entrypoints.wire.codec import EventIn
from voxmeter.service import tenancy
from voxmeter.service.ingest import ingest_batch

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def seed(db: str, events: int) -> None:
    """Fill the bench operation's current month with synthetic events."""
    ctx = bootstrap.context(Settings(database_url=db))
    op = tenancy.find_operation(ctx, "bench", "9901")
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(1, int((now - start).total_seconds()) - 60)
    batch: list[EventIn] = []
    for i in range(events):
        at = start + timedelta(seconds=i * span // events)
        batch.append(
            EventIn(id=f"seed-{i:09d}", product="ivr_minutes", time=at, quantity=Decimal("1.5"))
        )
        if len(batch) == 10_000:
            ingest_batch(ctx, op, batch)  # type: ignore[arg-type]
            batch = []
    if batch:
        ingest_batch(ctx, op, batch)  # type: ignore[arg-type]
    ctx.storage.close()


def uncached_read_us(db: str, repeats: int = 5000) -> dict[str, float]:
    """p50/p99 of one month read straight from storage, bypassing the server's cache."""
    storage = bootstrap.open_storage(db)
    ctx = bootstrap.context(Settings(database_url=db), storage)
    op = tenancy.find_operation(ctx, "bench", "9901")
    month = datetime.now(UTC).year * 12 + datetime.now(UTC).month - 1
    apis = [p.api for p in ctx.catalog]
    levels = [p.api for p in ctx.catalog if p.aggregation.is_level]
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        storage.frozen_figures(op.id, month)
        storage.meter_states(op.id, month, ["ivr_minutes"])
        storage.meter_states(op.id, month, apis)
        storage.carried_levels(op.id, month, levels)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    storage.close()
    return {"p50": samples[len(samples) // 2], "p99": samples[int(len(samples) * 0.99)]}


def lua_for(tokens: list[str]) -> Path:
    """A wrk script giving each thread its own token."""
    listed = ", ".join(f'"{t}"' for t in tokens)
    script = f"""
local tokens = {{{listed}}}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("token", tokens[counter])
end
function init(args)
  wrk.headers["wolkvox-token"] = token
end
"""
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text(script)
    return path


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{connections}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        result[f"p{pct}"] = float(match[1]) * _UNITS[match[2]]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(bad[1]) if bad else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=None)
    add_backend_option(parser)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (several need --backend postgres)"
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    db = args.db or (fresh_postgres() if args.backend == "postgres" else fresh_db())
    extra: tuple[str, ...] = (
        ("--redis", "redis://127.0.0.1:6379/0") if db.startswith("postgres") else ()
    )
    if args.workers > 1:
        extra += ("--workers", str(args.workers))
    tokens = make_tenant(db, tokens=args.connections)
    if args.db is None:
        seed(db, args.events)
    uncached = uncached_read_us(db)
    script = lua_for(tokens)
    server = Server(db, args=extra).start()
    time.sleep(1)
    health = f"{server.base}/healthz"
    billing = f"{server.base}/api/v2/billing.php?api=ivr_minutes"
    try:
        wrk(billing, script, args.connections, 2)  # warm-up
        rows = []
        for _ in range(args.rounds):
            rows.append(("healthz", wrk(health, script, args.connections, args.seconds)))
            rows.append(("billing", wrk(billing, script, args.connections, args.seconds)))
    finally:
        server.stop()
    print(
        f"read bench: {args.connections} connections, {args.workers} worker(s), "
        f"{args.seconds}s x {args.rounds} rounds, "
        f"{cpu_note()}, database {db}"
    )
    print(f"{'endpoint':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in rows:
        print(
            f"{name:<10} {r['rps']:>10,.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['non2xx']:>8.0f}"
        )
    best = {n: max(r["rps"] for m, r in rows if m == n) for n in ("healthz", "billing")}
    p99 = max(r["p99"] for m, r in rows if m == "billing")
    print(
        f"uncached month read from storage (one product + all 27 + carried levels): "
        f"p50 {uncached['p50']:.0f} us, p99 {uncached['p99']:.0f} us"
    )
    write_json(
        args.json,
        {
            "bench": "read",
            "backend": db.split(":", 1)[0],
            "events": args.events if args.db is None else None,
            "database": db,
            "workers": args.workers,
            "connections": args.connections,
            "healthz_rps": best["healthz"],
            "billing_rps": best["billing"],
            "ratio": best["billing"] / best["healthz"],
            "billing_p99_ms": p99,
            "non2xx": sum(r["non2xx"] for _, r in rows),
            "uncached_p50_us": uncached["p50"],
            "uncached_p99_us": uncached["p99"],
        },
    )
    print(
        f"billing/healthz throughput ratio: {best['billing'] / best['healthz']:.2f}; "
        f"billing p99 (worst round): {p99:.3f} ms"
    )


if __name__ == "__main__":
    main()
