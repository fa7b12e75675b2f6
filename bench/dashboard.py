"""The dashboard's speed, and what it costs everything else.

`view`: the operation view of a month with 27 products (figures, daily charts, forecasts,
statement, quota), rendered server-side through the whole ASGI app in this process (session,
reads, template), alternately on a database of 10,000 events and one of millions, with the
clock fixed on the month's last evening so every day of it is charted. Target p99 < 50 ms.

`overview`: the admin overview of N operations (each with usage of every product and priced),
rendered the same way. Target p99 < 500 ms at 1,000 operations.

`interference`: a real server; billing.php throughput (wrk) and ingest throughput (wrk posting
batches of 100 new events), each measured alternately without and with a client refreshing the
dashboard every second, so machine noise hits both alike. Target: within 5 %.

    .venv/bin/python -m bench.dashboard view --large-events 10000000
    .venv/bin/python -m bench.dashboard view --large sqlite:////tmp/voxmeter-bench-XXXX/bench.db
    .venv/bin/python -m bench.dashboard overview --operations 1000
    .venv/bin/python -m bench.dashboard interference --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import requests

from bench import daily_read, statement
from bench.common import Server, cpu_note, fresh_db, fresh_postgres, make_tenant, write_json
from bench.read import lua_for, wrk
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.entrypoints.http.app import create_app
from voxmeter.entrypoints.http.types import ASGIApp
from voxmeter.service import dashboard_sessions
from voxmeter.service.admin_tokens import create_admin_token
from voxmeter.service.context import Context
from voxmeter.service.tenancy import create_token, find_operation


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def app_for(db: str, fixed: bool) -> tuple[ASGIApp, Context[object]]:
    """The app `voxmeter serve` builds on `db`; with `fixed`, its clock stands at the end of
    the bench month (bench/daily_read.py's)."""
    settings = Settings(database_url=db)
    ctx = bootstrap.context(settings)
    if fixed:
        ctx = replace(ctx, clock=daily_read.fixed_clock)
    return create_app(bootstrap.app_state(settings, ctx), background=False), ctx


def session_for(ctx: Context[object], token: str) -> str:
    opened = dashboard_sessions.sign_in(ctx, token)  # type: ignore[arg-type]
    assert opened is not None
    return opened[0]


async def _time_pages(
    apps: dict[str, tuple[ASGIApp, str]], rounds: int, per_round: int
) -> dict[str, list[float]]:
    clients = {
        name: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1",
            cookies={"vxm_session": secret},
        )
        for name, (app, secret) in apps.items()
    }
    times: dict[str, list[float]] = {name: [] for name in apps}
    cpu: dict[str, list[float]] = {name: [] for name in apps}
    for name, client in clients.items():  # warm: templates compiled, caches filled
        reply = await client.get("/dashboard")
        assert reply.status_code == 200, (name, reply.status_code, reply.text[:500])
    for _ in range(rounds):
        for name, client in clients.items():
            for _ in range(per_round):
                start, used = time.perf_counter(), time.process_time()
                reply = await client.get("/dashboard")
                times[name].append((time.perf_counter() - start) * 1000)
                cpu[name].append((time.process_time() - used) * 1000)
                assert reply.status_code == 200
    for client in clients.values():
        await client.aclose()
    return {**times, **{f"{name} cpu": values for name, values in cpu.items()}}


def count_events(db: str) -> int:
    return daily_read.count_events(db)


def view(args: argparse.Namespace) -> dict[str, object]:
    fresh = fresh_postgres if args.backend == "postgres" else fresh_db
    small_db = fresh()
    daily_read.seed(small_db, args.small_events)
    large_db = args.large
    if large_db is None:
        large_db = fresh()
        print(f"filling {large_db} with {args.large_events:,} events", flush=True)
        daily_read.seed(large_db, args.large_events)
    apps: dict[str, tuple[ASGIApp, str]] = {}
    for name, db in (("small", small_db), ("large", large_db)):
        app, ctx = app_for(db, fixed=True)
        op = find_operation(ctx, "bench", "9901")  # type: ignore[arg-type]
        _, secret = create_token(ctx, op, "dashboard bench", [])  # type: ignore[arg-type]
        apps[name] = (app, session_for(ctx, secret))
    times = anyio.run(_time_pages, apps, args.rounds, args.per_round)
    events = {name: count_events(db) for name, db in (("small", small_db), ("large", large_db))}
    print(f"operation view (27 products, 31 days charted), interleaved, {cpu_note()}")
    for name in ("small", "large"):
        print(
            f"{name}: {events[name]:>12,} events  p50 {pct(times[name], 0.5):7.2f} ms  "
            f"p99 {pct(times[name], 0.99):7.2f} ms  (CPU p50 {pct(times[name + ' cpu'], 0.5):.2f}"
            f" p99 {pct(times[name + ' cpu'], 0.99):.2f} ms)"
        )
    ratio = pct(times["large"], 0.99) / pct(times["small"], 0.99)
    print(f"p99 ratio large/small: {ratio:.2f}  (target: large p99 < 50 ms)")
    return {
        "bench": "dashboard_view",
        "backend": args.backend,
        **{
            f"{name}_{key}": value
            for name in ("small", "large")
            for key, value in (
                ("events", events[name]),
                ("p50_ms", pct(times[name], 0.5)),
                ("p99_ms", pct(times[name], 0.99)),
                ("cpu_p99_ms", pct(times[name + " cpu"], 0.99)),
            )
        },
        "p99_ratio": ratio,
    }


def overview(args: argparse.Namespace) -> dict[str, object]:
    db = args.db or (fresh_postgres() if args.backend == "postgres" else fresh_db())
    if args.db is None:
        print(f"creating {args.operations:,} operations in {db}", flush=True)
        statement.seed_operations(db, args.operations)
    app, ctx = app_for(db, fixed=False)
    _, secret = create_admin_token(ctx, "dashboard bench")  # type: ignore[arg-type]
    found = anyio.run(
        _time_pages, {"overview": (app, session_for(ctx, secret))}, args.rounds, args.per_round
    )
    times, cpu = found["overview"], found["overview cpu"]
    count = len(ctx.storage.operations())  # type: ignore[attr-defined]
    print(f"admin overview of {count:,} operations, {cpu_note()}")
    print(
        f"p50 {pct(times, 0.5):7.1f} ms  p99 {pct(times, 0.99):7.1f} ms  (target: p99 < 500 ms)"
        f"  CPU p50 {pct(cpu, 0.5):.1f} p99 {pct(cpu, 0.99):.1f} ms"
    )
    return {
        "bench": "dashboard_overview",
        "backend": args.backend,
        "operations": count,
        "p50_ms": pct(times, 0.5),
        "p99_ms": pct(times, 0.99),
        "cpu_p50_ms": pct(cpu, 0.5),
        "cpu_p99_ms": pct(cpu, 0.99),
    }


INGEST_LUA = """
local tokens = {%s}
local counter = 0
local run = "%s"
function setup(thread)
  counter = counter + 1
  thread:set("token", tokens[counter])
  thread:set("prefix", run .. "-" .. counter)
end
local n = 0
function request()
  n = n + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format(
      '{"id":"%%s-%%d-%%d","product":"ivr_minutes","time":"%s","quantity":"1"}', prefix, n, i)
  end
  return wrk.format("POST", "/api/v2/events",
    {["wolkvox-token"] = token, ["Content-Type"] = "application/json"},
    "[" .. table.concat(parts, ",") .. "]")
end
"""


def ingest_script(tokens: list[str], run: str) -> Path:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    listed = ", ".join(f'"{t}"' for t in tokens)
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text(INGEST_LUA % (listed, run, now))
    return path


class Refresher(threading.Thread):
    """A signed-in browser reloading the dashboard every second."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.http = requests.Session()
        page = self.http.get(f"{base}/dashboard", timeout=30)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        signed = self.http.post(
            f"{base}/dashboard/login",
            data={"token": token, "csrf": csrf[1]},
            allow_redirects=False,
            timeout=30,
        )
        assert signed.status_code == 303, signed.text
        self.pages = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            reply = self.http.get(f"{self.base}/dashboard", timeout=30)
            assert reply.status_code == 200
            self.pages += 1
            self.halt.wait(1.0)

    def stop(self) -> int:
        self.halt.set()
        self.join()
        return self.pages


def interference(args: argparse.Namespace) -> dict[str, object]:
    db = fresh_postgres() if args.backend == "postgres" else fresh_db()
    read_tokens = make_tenant(db, tokens=args.connections)
    write_tokens = make_tenant(db, name="writer", tokens=args.connections)
    server_args: tuple[str, ...] = ()
    if args.backend == "postgres":
        server_args = ("--redis", "redis://127.0.0.1:6379/0")
    server = Server(db, args=server_args).start()
    read_script = lua_for(read_tokens)
    results: dict[str, dict[str, list[float]]] = {
        mode: {"billing": [], "ingest": []} for mode in ("without", "with")
    }
    pages = 0
    try:
        wrk(server.url("/api/v2/billing.php?api=all"), read_script, args.connections, 2)  # warm
        for round_ in range(args.rounds):
            for mode in ("without", "with") if round_ % 2 == 0 else ("with", "without"):
                refresher = Refresher(server.base, read_tokens[0]) if mode == "with" else None
                if refresher:
                    refresher.start()
                billing = wrk(
                    server.url("/api/v2/billing.php?api=all"),
                    read_script,
                    args.connections,
                    args.seconds,
                )
                script = ingest_script(write_tokens, f"r{round_}{mode}")
                ingest = wrk(server.url("/api/v2/events"), script, args.connections, args.seconds)
                if refresher:
                    pages += refresher.stop()
                assert billing["non2xx"] == 0, billing
                assert ingest["non2xx"] == 0, ingest
                results[mode]["billing"].append(billing["rps"])
                results[mode]["ingest"].append(ingest["rps"] * 100)
                print(
                    f"round {round_ + 1} {mode:>7} dashboard: billing {billing['rps']:8.0f} req/s"
                    f"  ingest {ingest['rps'] * 100:9.0f} events/s",
                    flush=True,
                )
    finally:
        server.stop()
    summary: dict[str, object] = {"bench": "dashboard_interference", "backend": args.backend}
    print(f"medians over {args.rounds} rounds, {cpu_note()}; {pages} dashboard pages served")
    for what in ("billing", "ingest"):
        without = statistics.median(results["without"][what])
        with_ = statistics.median(results["with"][what])
        ratio = with_ / without
        print(f"{what}: without {without:9.0f}/s  with {with_:9.0f}/s  ratio {ratio:.3f}")
        summary |= {f"{what}_without": without, f"{what}_with": with_, f"{what}_ratio": ratio}
    summary["dashboard_pages"] = pages
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    sub = parser.add_subparsers(dest="what", required=True)
    v = sub.add_parser("view")
    v.add_argument("--large", default=None, help="a database bench/daily_read.py filled before")
    v.add_argument("--large-events", type=int, default=1_000_000)
    v.add_argument("--small-events", type=int, default=10_000)
    v.add_argument("--rounds", type=int, default=10)
    v.add_argument("--per-round", type=int, default=30)
    o = sub.add_parser("overview")
    o.add_argument("--db", default=None, help="a database this command filled before")
    o.add_argument("--operations", type=int, default=1000)
    o.add_argument("--rounds", type=int, default=5)
    o.add_argument("--per-round", type=int, default=20)
    i = sub.add_parser("interference")
    i.add_argument("--rounds", type=int, default=4)
    i.add_argument("--seconds", type=int, default=5)
    i.add_argument("--connections", type=int, default=2)
    args = parser.parse_args()
    run = {"view": view, "overview": overview, "interference": interference}[args.what]
    write_json(args.json, run(args))


if __name__ == "__main__":
    main()
