"""Billing throughput of the scaled-out server against the embedded one, side by side in one run.

Starts every side's server at once (each on its own fresh database, each wrk connection with its
own token, since the per-token limit is 2 in flight), then alternates wrk rounds between them:
billing.php, then /healthz, side after side, `--rounds` times. Prints each round, the best and
the median billing and /healthz throughput per side, and the ratio of each side's billing
throughput to the embedded side's (best to best, median to median).

Sides: `embedded` (SQLite, in-process limits, one process), `scaled` (PostgreSQL + Redis,
`--workers` processes); with `--baseline-src DIR` (another checkout, e.g. `main` in a worktree)
also `embedded@base` and `scaled@base`, the same servers run from DIR/src, to check for a
regression. Requires `wrk`, PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.

    .venv/bin/python -m bench.scale_out --workers 2 --connections 16 --seconds 5 --rounds 3
    .venv/bin/python -m bench.scale_out --baseline-src /work/wt/scaled-base --sides \
        embedded,embedded@base
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import cpu_note, fresh_db, fresh_postgres, make_tenant, write_json
from bench.read import lua_for, seed, wrk
from bench.server import ServerProcess

REDIS = "redis://127.0.0.1:6379/0"


def prepare(backend: str, connections: int, events: int) -> tuple[str, list[str]]:
    """A fresh database of `backend` with the bench tenant, `connections` tokens and events."""
    db = fresh_postgres() if backend == "postgres" else fresh_db()
    tokens = make_tenant(db, tokens=connections)
    seed(db, events)
    return db, tokens


@dataclass
class Side:
    name: str
    backend: str
    workers: int
    src: Path | None = None
    db: str = ""
    tokens: list[str] = field(default_factory=list)
    server: ServerProcess | None = None
    billing: list[dict[str, float]] = field(default_factory=list)
    healthz: list[dict[str, float]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """Run from another checkout's source: its src first on the path."""
        if self.src is None:
            return {}
        return {"PYTHONPATH": f"{self.src / 'src'}{os.pathsep}{os.getcwd()}"}

    def setup(self, connections: int, events: int) -> None:
        """The database, made by the side's own code (so its schema is the one it expects)."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.scale_out",
                "--prepare",
                self.backend,
                "--connections",
                str(connections),
                "--events",
                str(events),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **self.env()},
        ).stdout
        found = json.loads(out.strip().splitlines()[-1])
        self.db, self.tokens = found["db"], found["tokens"]

    def start(self) -> None:
        args: list[str] = []
        if self.backend == "postgres":
            args += ["--redis", REDIS]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        self.server = ServerProcess(self.db, args=args, env=self.env())
        self.server.run(timeout=60)


def _summary(rounds: list[dict[str, float]]) -> tuple[float, float]:
    rps = [r["rps"] for r in rounds]
    return max(rps), statistics.median(rps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepare", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2, help="processes of the scaled side")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--api", default="ivr_minutes", help="billing.php's api parameter")
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--sides", default=None, help="comma-separated subset of the sides")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.prepare:
        db, tokens = prepare(args.prepare, args.connections, args.events)
        print(json.dumps({"db": db, "tokens": tokens}))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    sides = [Side("embedded", "sqlite", 1), Side("scaled", "postgres", args.workers)]
    if args.baseline_src is not None:
        base = args.baseline_src.resolve()
        sides += [
            Side("embedded@base", "sqlite", 1, base),
            Side("scaled@base", "postgres", args.workers, base),
        ]
    if args.sides:
        wanted = args.sides.split(",")
        sides = [s for s in sides if s.name in wanted]
    path = f"/api/v2/billing.php?api={args.api}"
    try:
        for side in sides:
            side.setup(args.connections, args.events)
            side.start()
        time.sleep(1)
        for side in sides:  # warm-up: token and reply caches, connection pools
            assert side.server is not None
            wrk(side.server.url(path), lua_for(side.tokens), args.connections, 2)
        for n in range(args.rounds):
            order = sides if n % 2 == 0 else sides[::-1]
            for side in order:
                assert side.server is not None
                script = lua_for(side.tokens)
                side.billing.append(
                    wrk(side.server.url(path), script, args.connections, args.seconds)
                )
                side.healthz.append(
                    wrk(side.server.url("/healthz"), script, args.connections, args.seconds)
                )
    finally:
        for side in sides:
            if side.server is not None:
                side.server.stop()

    print(
        f"scale-out bench: {args.connections} connections, scaled side {args.workers} workers, "
        f"{args.seconds}s x {args.rounds} rounds alternated, {cpu_note()}"
    )
    print(
        f"{'side':<14} {'round':>5} {'billing/s':>10} {'p99 ms':>8} {'healthz/s':>10} "
        f"{'p99 ms':>8} {'non-2xx':>8}"
    )
    for side in sides:
        for n, (b, h) in enumerate(zip(side.billing, side.healthz, strict=True)):
            print(
                f"{side.name:<14} {n + 1:>5} {b['rps']:>10,.0f} {b['p99']:>8.3f} "
                f"{h['rps']:>10,.0f} {h['p99']:>8.3f} {b['non2xx'] + h['non2xx']:>8.0f}"
            )
    reference = next((s for s in sides if s.name == "embedded"), sides[0])
    ref_best, ref_median = _summary(reference.billing)
    result: dict[str, object] = {"bench": "scale_out", "connections": args.connections}
    print(
        f"{'side':<14} {'best':>10} {'median':>10} {'healthz best':>13} "
        f"{'x best':>7} {'x median':>9}"
    )
    for side in sides:
        best, median = _summary(side.billing)
        h_best, _ = _summary(side.healthz)
        print(
            f"{side.name:<14} {best:>10,.0f} {median:>10,.0f} {h_best:>13,.0f} "
            f"{best / ref_best:>7.2f} {median / ref_median:>9.2f}"
        )
        result[side.name] = {
            "billing_best": best,
            "billing_median": median,
            "healthz_best": h_best,
            "ratio_best": best / ref_best,
            "ratio_median": median / ref_median,
            "non2xx": sum(r["non2xx"] for r in side.billing + side.healthz),
        }
    write_json(args.json, result)


if __name__ == "__main__":
    main()
