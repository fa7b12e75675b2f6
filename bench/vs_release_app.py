"""The app's own CPU time per request, this tree against an earlier release, without sockets.

`bench/vs_release.py` measures whole servers over loopback; on a machine shared with other work
its figures move by tens of percent. This one calls each tree's ASGI app (as `voxmeter serve`
builds it, background tasks off) directly in a process of its own, and counts the process's CPU
time (all threads: storage work included) per request or event: what the two trees' own code
costs, without uvicorn, the kernel or the load generator, which are the same for both. Each
tree's database is made by its own CLI (as in vs_release) and copied fresh for every run; runs
alternate between the trees, and each reports its best of `--repeats` timings.

    .venv/bin/python -m bench.vs_release_app 59cd457
    .venv/bin/python -m bench.vs_release_app 59cd457 --only billing --only ingest_1k --rounds 12
    .venv/bin/python -m bench.vs_release_app 59cd457 --alerts 100 --only ingest_1k --only ingest_10k

With `--alerts N` a third run, this tree again with N alerts on the ingested operation (as
`vs_release.py --alerts` sets them up; no delivery is sent, the app's background tasks being
off), is timed beside the other two: its ratios to the old release and to this tree without
alerts are what evaluating the alerts inside each batch costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.vs_release import (
    ROOT,
    Side,
    alert_setup,
    bodies,
    both_sides,
    clean_environment,
    event_times,
    fresh_copy,
    provision,
    this_tree_label,
)

# Runs in the measured tree's interpreter, so it imports nothing from bench/ (whose imports
# follow this tree). argv: database, token, what ("GET path" or "POST folder-of-bodies"),
# requests per timing (GET) or events per body (POST), timings. Prints the best timing in
# microseconds of CPU per request (GET) or event (POST).
_APP_DRIVER = """
import asyncio, sys, time
from pathlib import Path
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.entrypoints.http.app import create_app

db, token, what, count, repeats = sys.argv[1:4] + [int(sys.argv[4]), int(sys.argv[5])]
settings = Settings(database_url=db)
app = create_app(bootstrap.app_state(settings, bootstrap.context(settings)), background=False)
method, target = what.split(" ", 1)
statuses = []


def scope(path, query, body):
    headers = [(b"host", b"127.0.0.1:8080"), (b"wolkvox-token", token.encode())]
    if body is not None:
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "state": {}}


async def call(path, query, body):
    pending = [{"type": "http.request", "body": body or b"", "more_body": False}]

    async def receive():
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # nothing more: the app never waits here

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope(path, query, body), receive, send)


async def main():
    path, _, query = target.partition("?")
    posts = [p.read_bytes() for p in sorted(Path(target).iterdir())] if method == "POST" else []
    per = len(posts) // (repeats + 1) if posts else count
    items = iter(posts)
    async def run():
        for _ in range(per):
            if posts:
                await call("/api/v2/events", "", next(items))
            else:
                await call(path, query, None)
    await run()  # warm-up: imports, caches, the first storage reads
    best = None
    for _ in range(repeats):
        started = time.process_time()
        await run()
        spent = time.process_time() - started
        best = spent if best is None else min(best, spent)
    if set(statuses) != {200}:
        sys.exit(f"replies other than 200: {sorted(set(statuses))}")
    unit = per * count if posts else per
    print(best / unit * 1e6)


asyncio.run(main())
"""

MEASURES = {
    "healthz": ("GET /healthz", "us/request"),
    "billing": ("GET /api/v2/billing.php?api=ivr_minutes", "us/request"),
    "ingest_1k": ("POST", "us/event"),
    "ingest_10k": ("POST", "us/event"),
}


def write_bodies(folder: Path, size: int, count: int) -> Path:
    """`count` batches of `size` time-ordered events, one file each, in sending order."""
    folder.mkdir(parents=True)
    for n, body in enumerate(bodies(size, count, 0, event_times(size * count))):
        (folder / f"{n:05d}.json").write_bytes(body)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the earlier release: a git ref of this repository")
    parser.add_argument("--only", action="append", choices=list(MEASURES))
    parser.add_argument("--rounds", type=int, default=8, help="runs of each tree per measure")
    parser.add_argument("--repeats", type=int, default=3, help="timings per run (best kept)")
    parser.add_argument("--requests", type=int, default=5000, help="GET requests per timing")
    parser.add_argument(
        "--alerts", type=int, default=0, help="also time this tree with N alerts (default 0)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    clean_environment()
    folder = Path(tempfile.mkdtemp(prefix="voxmeter-vs-release-app-"))
    try:
        compare(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def compare(args: argparse.Namespace, folder: Path) -> None:
    sides = both_sides(args.ref, folder)
    if args.alerts:
        hook = "http://127.0.0.1:9/never-called"
        label = f"{this_tree_label()} with {args.alerts} alerts"
        sides.append(Side("alerts", ROOT / "src", label, setup=alert_setup(args.alerts, hook)))
    for side in sides:
        provision(side, folder / "template" / side.name, 1)
    posts = {
        "ingest_1k": write_bodies(folder / "b1k", 1_000, 20 * (args.repeats + 1)),
        "ingest_10k": write_bodies(folder / "b10k", 10_000, 3 * (args.repeats + 1)),
    }
    print(f"app CPU time per unit: {'; '.join(f'{x.name} = {x.label}' for x in sides)}; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    results: dict[str, dict[str, object]] = {}
    for key, (what, unit) in MEASURES.items():
        if args.only and key not in args.only:
            continue
        count = args.requests
        if key in posts:
            what, count = f"POST {posts[key]}", 1_000 if key == "ingest_1k" else 10_000
        taken: dict[str, list[float]] = {side.name: [] for side in sides}
        for number in range(args.rounds):
            for side in sides if number % 2 == 0 else sides[::-1]:
                db = fresh_copy(side, folder / f"{key}-{number}-{side.name}")
                taken[side.name].append(run_app(side, db, what, count, args.repeats))
        ratios = [n / o for o, n in zip(taken["old"], taken["new"], strict=True)]
        old, new = statistics.median(taken["old"]), statistics.median(taken["new"])
        ratio = statistics.median(ratios)
        flag = " <<" if ratio > 1.05 else ""
        print(
            f"{key:<11} old {old:7.2f} new {new:7.2f} {unit}; new/old {ratio:.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f}){flag}",
            flush=True,
        )
        results[key] = {"unit": unit, **taken, "ratio": ratio}
        if "alerts" in taken:
            for base in ("old", "new"):
                paired = [a / b for b, a in zip(taken[base], taken["alerts"], strict=True)]
                results[key][f"alerts_to_{base}"] = statistics.median(paired)
                print(
                    f"{'':<11} with {args.alerts} alerts {statistics.median(taken['alerts']):7.2f}"
                    f" {unit}; /{base} {statistics.median(paired):.3f} "
                    f"({min(paired):.3f}-{max(paired):.3f})",
                    flush=True,
                )
    if args.json:
        labels = {side.name: side.label for side in sides}
        out = {"bench": "vs_release_app", **labels, "alerts": args.alerts, **results}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def run_app(side: Side, db: str, what: str, count: int, repeats: int) -> float:
    """One run of the app driver in the side's tree: its best CPU microseconds per unit."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _APP_DRIVER, db, side.tokens[0], what, str(count), str(repeats)],
        env={**os.environ, **side.env},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"{side.name}: {what} failed after {time.monotonic() - started:.0f} s:\n"
                         f"{done.stderr[-3000:]}")  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
