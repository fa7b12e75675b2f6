"""Fault injection under sustained ingest: kill -9 of the server, Redis and PostgreSQL restarts.

Each scenario drives real `voxmeter serve` processes on loopback with two client threads sending
10,000-event batches (time-ordered ids, known Decimal quantities, every fourth batch re-sending
1,000 already acknowledged events), breaks something at random moments, and then checks what the
contract promises: every acknowledged event is stored exactly once, a batch whose outcome the
client could not know is wholly present or wholly absent, and every figure equals the exact
Decimal sum over the stored distinct events.

- sqlite-kill: embedded server; `kill -9` of its process group, restart on the same file.
- pg-kill: `--workers 2` on PostgreSQL + Redis; `kill -9` of supervisor and workers together.
- redis-restart: `--workers 2`; Redis is stopped (SIGTERM and SIGKILL alternately) and started
  empty mid-load. Meanwhile only 503 envelopes with Retry-After; afterwards the concurrency limit
  holds again and the daily quota counters are re-seeded from the database (a quiet token's
  count stays exact; the busy operation loses at most the last second of counts, as the README
  documents).
- pg-restart: `--workers 2`; PostgreSQL is stopped (fast and immediate, alternately) for a few
  seconds mid-load. Meanwhile only 503 envelopes with Retry-After or successes, within a bound;
  afterwards full service by itself.

PostgreSQL and Redis are private to the run (initdb into a temporary directory, a redis-server
without persistence, both on free ports), so the machine's own services are never touched.

    .venv/bin/python -m bench.faults --scenario all
    .venv/bin/python -m bench.faults --scenario pg-restart --rounds 3 --seed 7

Prints a markdown table, writes bench/reports/faults.md and bench/reports/faults.json, and exits
1 when any scenario fails.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from bench.faults.events import SCENARIOS
from bench.faults.report import write_reports
from bench.faults.results import Result
from bench.faults.scenarios import Options, kill_scenario, outage_scenario
from bench.faults.services import Environment


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=["all", *SCENARIOS], default="all")
    parser.add_argument("--rounds", type=int, default=5, help="kills or outages per scenario")
    parser.add_argument("--seed", type=int, default=1, help="kill moments and re-sent events")
    parser.add_argument("--down", type=float, default=3.0, help="seconds a component stays down")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="bound per scenario")
    parser.add_argument("--keep", action="store_true", help="keep logs and databases")
    args = parser.parse_args()
    opts = Options(args.rounds, args.seed, args.down, args.max_seconds)
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    runners: dict[str, Callable[[str, Environment, Options], Result]] = {
        "sqlite-kill": kill_scenario,
        "pg-kill": kill_scenario,
        "redis-restart": outage_scenario,
        "pg-restart": outage_scenario,
    }
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(UTC)
    env = Environment(args.keep)
    results: list[Result] = []
    failed = True
    try:
        for name in chosen:
            print(f"{name}: running", flush=True)
            results.append(runners[name](name, env, opts))
            print(
                f"{name}: {'PASS' if results[-1].passed else 'FAIL: ' + results[-1].reason}",
                flush=True,
            )
        failed = not all(r.passed for r in results)
    finally:
        env.close(failed)
    command = ".venv/bin/python -m bench.faults " + " ".join(sys.argv[1:])
    print(write_reports(results, command.strip(), started))
    if failed:
        raise SystemExit(1)
