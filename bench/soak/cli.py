"""Bounded soak: mixed load on a real server over loopback, judged response by response.

One client thread per kind of traffic, each at a modest fixed rate so the server and this load
generator fit on two cores together: valid ingest batches (with retries and repeated ids),
billing.php reads, token_info, reconciliation listings, voids, deliberate bad input, a
concurrency probe (two stalled uploads on one token, then a third request) and a small operation
whose daily quota is used up on purpose. Every response is classed as an expected success, an
expected refusal (its error envelope checked) or an unexpected error. At the end the server's
figures, its event listing and its own counters must agree exactly with what the soak sent, and
the server's RSS must not grow by 10 % or more after the warm-up.

Bounded by `--minutes` and `--max-requests`; exits 1 when the verdict is FAIL. Writes
`<out>/soak.md` and `<out>/soak.json` (`soak-postgres.*` for the scaled-out backend).

    .venv/bin/python -m bench.soak                      # 10 minutes, embedded SQLite
    .venv/bin/python -m bench.soak --backend postgres   # fresh PostgreSQL database + Redis
    .venv/bin/python -m bench.soak --minutes 1 --warmup-minutes 0.5 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Server, add_backend_option, cpu_note, fresh_db, fresh_postgres, write_json
from bench.soak.checks import (
    Sample,
    cpu_seconds,
    final_figures,
    reconcile,
    sample_rss,
    server_counters,
)
from bench.soak.ledger import CONCURRENCY, QUOTA, REDIS_URL, SMALL_LICENSES, Ledger
from bench.soak.load import (
    Soak,
    Tenant,
    bad_traffic,
    billing_traffic,
    concurrency_traffic,
    info_traffic,
    ingest_traffic,
    listing_traffic,
    quota_traffic,
    void_traffic,
)
from bench.soak.report import markdown, summarise
from bench.soak.setup import code_version, make_tenants, zone_near_noon


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    add_backend_option(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1.0, help="scale every traffic rate")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "reports"))
    parser.add_argument("--keep-db", action="store_true", help="leave the database in place")
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()
    if args.minutes <= 0 or args.warmup_minutes <= 0:
        parser.error("--minutes and --warmup-minutes must be above 0")
    if args.warmup_minutes >= args.minutes:
        args.warmup_minutes = args.minutes / 2
        print(f"soak: warm-up shortened to {args.warmup_minutes:g} min (half the run)")

    zone = zone_near_noon()
    code = code_version()
    extra: tuple[str, ...] = ("--workers", str(args.workers))
    prefix = ""
    if args.backend == "postgres":
        db = fresh_postgres()
        prefix = f"voxsoak-{uuid.uuid4().hex[:8]}"
        os.environ["VOXMETER_REDIS_PREFIX"] = prefix
        extra += ("--redis", REDIS_URL)
        description = (
            f"PostgreSQL + Redis (fresh database, Redis key prefix {prefix}), "
            f"{args.workers} worker(s)"
        )
    else:
        db = fresh_db()
        description = f"embedded SQLite, {args.workers} worker(s)"
    tokens, quota_token = make_tenants(db, zone)
    server = Server(db, args=extra).start()
    tenant = Tenant(server.base, tokens, zone, quota_token)
    ledger = Ledger(zone)
    seconds = args.minutes * 60
    started = datetime.now(UTC)
    print(
        f"soak: {args.minutes:g} min, {description}, operation timezone {zone.key}, {cpu_note()}",
        flush=True,
    )
    cpu_before = cpu_seconds(server)
    soak = Soak(seconds, args.max_requests)
    rate = args.rate
    quota_result: dict[str, Any] = {}
    samples: list[Sample] = []

    def quota_job() -> None:
        quota_result.update(quota_traffic(soak, tenant, 20 * rate, 2 * rate))

    jobs: list[Callable[[], None]] = [
        lambda: ingest_traffic(soak, tenant, ledger, 1.0 * rate, args.seed),
        lambda: billing_traffic(soak, tenant, ledger, 20 * rate),
        lambda: info_traffic(soak, tenant, 5 * rate),
        lambda: listing_traffic(soak, tenant, ledger, 2 * rate),
        lambda: void_traffic(soak, tenant, ledger, 4 * rate, args.seed + 1),
        lambda: bad_traffic(soak, tenant, ledger, 5 * rate),
        lambda: concurrency_traffic(soak, tenant, ledger, 0.5 * rate),
        quota_job,
    ]
    sampler = threading.Thread(target=sample_rss, args=(soak, server, ledger, samples))
    threads = [threading.Thread(target=job, daemon=True) for job in jobs]
    sampler.start()
    for thread in threads:
        thread.start()
    last_minute = 0
    while soak.running():
        soak.stop.wait(1.0)
        minute = int((time.monotonic() - soak.start) // 60)
        if minute > last_minute:
            last_minute = minute
            print(
                f"  minute {minute}: {soak.requests:,} requests, {ledger.acked:,} events, "
                f"RSS {server.rss_mib():.1f} MiB, unexpected {soak.unexpected()}",
                flush=True,
            )
    elapsed = time.monotonic() - soak.start
    for thread in threads:
        thread.join(timeout=120)
    sampler.join()
    if elapsed - samples[-1].t > 1:
        samples.append(Sample(elapsed, server.rss_mib(), ledger.acked, soak.requests))
    cpu_used = cpu_seconds(server) - cpu_before

    checks_started = time.monotonic()
    figures = final_figures(tenant, ledger)
    reconciliation = reconcile(tenant, ledger)
    counters = server_counters(server.base)
    probe = soak.kinds["concurrency probe"]
    quota_refused = soak.kinds["quota (small op)"].refusals[QUOTA]
    expected_counters = {
        "limit concurrency": float(probe.refusals[CONCURRENCY]),
        "limit quota": float(quota_refused),
        "ingest accepted": float(ledger.accepted_total),
        "ingest duplicate": float(ledger.duplicates_total),
        "5xx": 0.0,
    }
    counter_values = {k: counters.get(k, 0.0) for k in expected_counters}
    checks_seconds = time.monotonic() - checks_started
    server.stop()
    exit_status = server.proc.returncode if server.proc else None

    kinds, rss = summarise(soak, elapsed, seconds, samples, args.warmup_minutes * 60)
    ingest_notes = soak.kinds["ingest"].notes
    figures_ok = (
        figures["ok"]
        and reconciliation["ok"]
        and counter_values == expected_counters
        and quota_result.get("admitted") == SMALL_LICENSES * 1000
    )
    unexpected = soak.unexpected()
    growth = rss["growth_after_warmup"]
    passed = unexpected == 0 and growth < 0.10 and figures_ok and exit_status == 0
    report: dict[str, Any] = {
        "bench": "soak",
        "minutes": args.minutes,
        "requests": soak.requests,
        "unexpected": unexpected,
        "rss_growth_pct": round(growth * 100, 2),
        "passed": passed,
        "run": {
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "minutes": args.minutes,
            "warmup_minutes": args.warmup_minutes,
            "seconds": elapsed,
            "backend": args.backend,
            "workers": args.workers,
            "description": description,
            "timezone": zone.key,
            "machine": cpu_note(),
            "code": code,
            "command": " ".join([".venv/bin/python", "-m", "bench.soak", *sys.argv[1:]]),
            "rate_scale": rate,
            "final_checks_s": round(checks_seconds, 1),
        },
        "kinds": kinds,
        "ingest": {
            "batches": len(soak.kinds["ingest"].latencies)
            - ingest_notes["retries after a failed attempt"],
            "retries_after_failure": ingest_notes["retries after a failed attempt"],
            "events_sent": ingest_notes["events sent"],
            "events_per_s": ingest_notes["events sent"] / elapsed,
            "accepted": ledger.accepted_total - ledger.holds,
            "duplicates": ledger.duplicates_total,
            "replays": ingest_notes["replays of an acknowledged batch"],
            "repeating_stored": ingest_notes["batches repeating stored ids"],
            "repeating_own": ingest_notes["batches repeating their own ids"],
        },
        "voids": {"voided": len(ledger.voided)},
        "concurrency": {
            "refused": probe.refusals[CONCURRENCY],
            "early": probe.notes["probes admitted before the holds were (retried)"],
        },
        "quota": quota_result,
        "server": {"cpu_percent": 100 * cpu_used / elapsed, "exit_status": exit_status},
        "rss": rss,
        "figures": figures,
        "reconciliation": reconciliation,
        "server_counters": {
            "values": counter_values,
            "expected": expected_counters,
            "ok": counter_values == expected_counters,
        },
        "verdict": {
            "pass": passed,
            "unexpected": unexpected,
            "rss_growth": growth,
            "figures_ok": figures_ok,
            "server_exit_status": exit_status,
        },
    }
    text = markdown(report)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "soak" if args.backend == "sqlite" else f"soak-{args.backend}"
    (out / f"{stem}.md").write_text(text)
    write_json(str(out / f"{stem}.json"), report)

    if prefix:
        import redis

        with redis.Redis.from_url(REDIS_URL) as r:
            keys = list(r.scan_iter(f"{prefix}*"))
            if keys:
                r.delete(*keys)
    if not args.keep_db:
        if db.startswith("postgresql"):
            import psycopg

            admin, name = db.rsplit("/", 1)
            with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}"')
        else:
            shutil.rmtree(Path(db.removeprefix("sqlite:///")).parent, ignore_errors=True)
    if not passed:
        raise SystemExit(1)
