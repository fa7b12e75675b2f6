"""Alert crossing -> webhook POST latency: from the ingest reply that made an alert reach its
threshold to the signed POST arriving at a healthy receiver, on a real `voxmeter serve`.

One operation holds `--alerts` alerts on one product with thresholds 1, 2, 3, ...; each batch adds
one unit, so each batch fires exactly one alert, whose delivery the receiver times. Prints the
latency's median, p90, p99 and max over the firings (target: p99 <= 1 s), with the load average.

    .venv/bin/python -m bench.alerts
    .venv/bin/python -m bench.alerts --alerts 300 --db postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import cpu_note, write_json
from bench.receiver import Receiver
from bench.server import ServerProcess
from voxmeter import bootstrap
from voxmeter.adapters.secret_box import open_secret_box
from voxmeter.config import Settings
from voxmeter.service import alerts, tenancy

TARGET_P99 = 1.0


def provision(db: str, receiver: Receiver, count: int) -> str:
    """An operation, a token and `count` alerts on `rsync` at thresholds 1..count."""
    settings = Settings.from_env()
    ctx = bootstrap.context(Settings(database_url=db))
    try:
        op = tenancy.create_operation(ctx, f"bench-{os.getpid()}", "9901", "UTC", 1_000_000)
        _, token = tenancy.create_token(ctx, op, "bench", [])
        box = open_secret_box(db, settings.secret_key)
        for n in range(1, count + 1):
            alerts.create_alert(
                ctx, box, op, product="rsync", threshold=str(n), on="figure", url=receiver.url
            )
    finally:
        ctx.storage.close()
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200, help="firings measured")
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="voxmeter-bench-alerts-"))
    db = args.db or f"sqlite:///{folder / 'bench.db'}"
    with Receiver() as receiver:
        token = provision(db, receiver, args.alerts)
        server = ServerProcess(db, log_path=folder / "server.log")
        server.run(timeout=60)
        load_before = os.getloadavg()
        latencies: list[float] = []
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            for n in range(args.alerts):
                at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                event = {"id": f"e{n}", "product": "rsync", "time": at, "quantity": "1"}
                body = json.dumps([event]).encode()
                conn.request(
                    "POST",
                    "/api/v2/events",
                    body,
                    {"wolkvox-token": token, "Content-Type": "application/json"},
                )
                reply = conn.getresponse()
                text = reply.read()
                committed = time.monotonic()
                if reply.status != 200:
                    raise SystemExit(f"ingest answered {reply.status}: {text[:300]!r}")
                got = receiver.wait(n + 1, timeout=30)[n]
                latencies.append(got.at - committed)
            conn.close()
        finally:
            server.stop()
    load_after = os.getloadavg()
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    figures = {
        "median_s": statistics.median(ordered),
        "p90_s": ordered[max(0, int(len(ordered) * 0.9) - 1)],
        "p99_s": p99,
        "max_s": ordered[-1],
    }
    backend = "PostgreSQL" if db.startswith("postgres") else "SQLite"
    print(
        f"alert crossing -> webhook POST, {len(ordered)} firings, {backend}, one server process: "
        + ", ".join(f"{k.removesuffix('_s')} {v * 1000:.0f} ms" for k, v in figures.items())
        + f"; target p99 <= {TARGET_P99 * 1000:.0f} ms: {'met' if p99 <= TARGET_P99 else 'MISSED'}"
    )
    print(f"{cpu_note()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    write_json(args.json, {"bench": "alerts", "firings": len(ordered), **figures})


if __name__ == "__main__":
    main()
