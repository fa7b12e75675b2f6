"""Mirrors at scale: does one `voxmeter serve` keep 1,000 mirrors on schedule with flat memory,
and does a mirror's billing read cost what an event-fed operation's does?

A local upstream (a thread of this process, voxmeter-shaped: `api=all` answered, any of the
mirrors' tokens accepted) serves every sweep. The server's database is sampled every few
seconds: each time a mirror's last attempt moves, its lateness is that attempt minus the due
time it had (first sweeps, all due at once at the start, are left out). The server's resident
memory is sampled alongside. Then the two billing reads are timed alternately on the same
server, so machine noise hits both alike.

    .venv/bin/python -m bench.mirrors --mirrors 1000 --minutes 10 --json bench/reports/mirrors.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from bench.common import cpu_note, fresh_db, make_tenant, write_json
from bench.server import ServerProcess, free_port
from voxmeter import bootstrap
from voxmeter.adapters.secret_box import open_secret_box
from voxmeter.adapters.sql.mirrors import decode_state
from voxmeter.config import Settings
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.mirrors import MirrorOptions
from voxmeter.service.mirrors import create_mirror
from voxmeter.service.tenancy import create_token

CATALOG = Catalog.load()


def upstream() -> tuple[ThreadingHTTPServer, str]:
    """A fast voxmeter-shaped upstream: every product 7, a quota far above any budget."""
    today = datetime.now(UTC).date().isoformat()
    rows = [
        {"operation": "up", "description": p.title, "items": "7", "date": today} for p in CATALOG
    ]
    billing = json.dumps({"code": 200, "error": None, "msg": "ok", "data": rows}).encode()
    info = json.dumps(
        {
            "code": 200,
            "error": None,
            "msg": "ok",
            "data": [{"token_limit": 1_000_000, "token_use_today": 1, "all_token_today": 1}],
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            body = info if "token_info" in self.path else billing
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def setup(db: str, base: str, count: int, interval: int) -> tuple[str, str, list[dict[str, str]]]:
    """`count` mirrors and an event-fed operation with a month of usage; a token of each."""
    ctx = bootstrap.context(Settings(database_url=db))
    box = open_secret_box(db, None)
    options = MirrorOptions(upstream_url=base, interval_minutes=interval, budget_percent=100)
    first = None
    for i in range(count):
        op = create_mirror(ctx, box, f"mirror-{i:04d}", "9901", options, f"up-{i}", licenses=1000)
        first = first or op
    assert first is not None
    mirror_token = create_token(ctx, first, "bench", [])[1]
    ctx.storage.close()
    fed_token = make_tenant(db, "fed")[0]
    now = datetime.now(UTC).isoformat()
    events = [
        {"id": f"e{i}", "product": p.api, "time": now, "quantity": "7"}
        for i, p in enumerate(CATALOG)
    ]
    return mirror_token, fed_token, events


def sample_states(db: str) -> dict[int, tuple[int | None, int]]:
    import sqlite3

    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("SELECT operation_id, state, next_due FROM mirrors").fetchall()
    return {int(i): (decode_state(s).last_attempt, int(due)) for i, s, due in rows}


def timed_reads(base: str, tokens: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Alternate the kinds' billing reads; microseconds each."""
    out: dict[str, list[float]] = {kind: [] for kind in tokens}
    with requests.Session() as session:
        for _ in range(rounds):
            for kind, token in tokens.items():
                start = time.perf_counter()
                reply = session.get(
                    base + "/api/v2/billing.php",
                    params={"api": "ivr_minutes"},
                    headers={"wolkvox-token": token},
                    timeout=30,
                )
                out[kind].append((time.perf_counter() - start) * 1e6)
                assert reply.status_code == 200, reply.text
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=int, default=5, help="Mirrors' interval (minutes).")
    parser.add_argument("--reads", type=int, default=2000, help="Billing reads of each kind.")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    httpd, base = upstream()
    db = fresh_db()
    mirror_token, fed_token, events = setup(db, base, args.mirrors, args.interval)
    server = ServerProcess(db, free_port())
    server.run(timeout=60)
    requests.post(
        server.url("/api/v2/events"),
        json=events,
        headers={"wolkvox-token": fed_token},
        timeout=30,
    ).raise_for_status()
    interval = args.interval * 60_000_000
    seen: dict[int, tuple[int | None, int]] = {}
    late: list[int] = []
    first_sweeps = 0
    rss: list[tuple[float, float]] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(2.0)
            states = sample_states(db)
            for op_id, (attempt, due) in states.items():
                before = seen.get(op_id)
                if attempt is not None and (before is None or before[0] != attempt):
                    if before is None or before[0] is None:
                        first_sweeps += 1
                    else:
                        late.append(attempt - before[1])
                seen[op_id] = (attempt, due)
            rss.append((time.monotonic() - started, server.rss_mib()))
        reads = timed_reads(server.base, {"mirror": mirror_token, "events": fed_token}, args.reads)
    finally:
        server.stop()
        httpd.shutdown()
    within = sum(1 for x in late if x <= interval // 10)
    mirror_median = statistics.median(reads["mirror"])
    fed_median = statistics.median(reads["events"])
    after_first_minute = [m for t, m in rss if t >= 60] or [m for _, m in rss]
    result = {
        "mirrors": args.mirrors,
        "minutes": args.minutes,
        "interval_minutes": args.interval,
        "first_sweeps": first_sweeps,
        "later_sweeps": len(late),
        "later_sweeps_within_10_percent": within,
        "lateness_seconds_p50": statistics.median(late) / 1e6 if late else None,
        "lateness_seconds_max": max(late) / 1e6 if late else None,
        "rss_mib_after_1_min": after_first_minute[0],
        "rss_mib_end": after_first_minute[-1],
        "rss_mib_max_after_1_min": max(after_first_minute),
        "billing_read_us_median_mirror": mirror_median,
        "billing_read_us_median_event_fed": fed_median,
        "billing_read_ratio_mirror_over_event_fed": mirror_median / fed_median,
        "cpu": cpu_note(),
    }
    print(json.dumps(result, indent=2))
    write_json(args.json, result)


if __name__ == "__main__":
    main()
