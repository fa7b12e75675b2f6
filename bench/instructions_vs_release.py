"""Instructions per ingested event, this tree against an earlier release, counted by callgrind.

Timings on a machine shared with other work move by tens of percent; instruction counts barely
move. Each tree's ASGI app (run as `bench/vs_release_app.py` runs it, in a process of its own,
on a database made by its own CLI) ingests `--few` and then `--many` time-ordered batches under
`valgrind --tool=callgrind`. The difference of the two totals divided by the events of the
extra batches is what one more event costs, without the process's start-up and imports; every
thread counts (the checkpoint thread's copying included). Requires valgrind; a run of the
defaults takes a few minutes.

    .venv/bin/python -m bench.instructions_vs_release 59cd457
    .venv/bin/python -m bench.instructions_vs_release 59cd457 --size 1000 --few 4 --many 24
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.vs_release import (
    Side,
    both_sides,
    clean_environment,
    fresh_copy,
    provision,
)
from bench.vs_release_app import _APP_DRIVER, write_bodies

_COLLECTED = re.compile(r"Collected : (\d+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the earlier release: a git ref of this repository")
    parser.add_argument("--size", type=int, default=10_000, help="events per batch (10000)")
    parser.add_argument("--few", type=int, default=2, help="batches of the shorter run (2)")
    parser.add_argument("--many", type=int, default=6, help="batches of the longer run (6)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.few < 2 or args.few % 2 or args.many % 2 or args.many <= args.few:
        parser.error("--few and --many must be even, at least 2, and --many larger")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install -y valgrind")
    clean_environment()
    folder = Path(tempfile.mkdtemp(prefix="voxmeter-instructions-"))
    try:
        compare(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def compare(args: argparse.Namespace, folder: Path) -> None:
    sides = both_sides(args.ref, folder)
    for side in sides:
        provision(side, folder / "template" / side.name, 1)
    every = write_bodies(folder / "bodies", args.size, args.many)
    runs = {}
    for count in (args.few, args.many):  # the same first batches in both runs
        runs[count] = folder / f"first-{count}"
        runs[count].mkdir()
        for body in sorted(every.iterdir())[:count]:
            (runs[count] / body.name).symlink_to(body)
    print(f"instructions per event, batches of {args.size:,}: old = {sides[0].label}, "
          f"new = {sides[1].label}", flush=True)  # fmt: skip
    results: dict[str, dict[str, int | float]] = {}
    for side in sides:
        totals = {count: counted(side, folder, runs[count], args.size) for count in runs}
        per_event = (totals[args.many] - totals[args.few]) / ((args.many - args.few) * args.size)
        results[side.name] = {"few": totals[args.few], "many": totals[args.many]}
        results[side.name]["per_event"] = per_event
        print(f"{side.name}: {totals[args.few]:,} and {totals[args.many]:,} instructions for "
              f"{args.few} and {args.many} batches: {per_event:,.0f} per event")  # fmt: skip
    ratio = results["new"]["per_event"] / results["old"]["per_event"]
    print(f"new/old {ratio:.3f}")
    if args.json:
        out = {"bench": "instructions_vs_release", "old": sides[0].label, "new": sides[1].label,
               "size": args.size, "ratio": ratio, **results}  # fmt: skip
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def counted(side: Side, folder: Path, bodies: Path, size: int) -> int:
    """Instructions of one app process ingesting every body in `bodies` (half of them as the
    driver's warm-up, half as its one timing), start-up included."""
    db = fresh_copy(side, folder / f"run-{side.name}-{bodies.name}")
    out = folder / f"callgrind-{side.name}-{bodies.name}.out"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    driver = [sys.executable, "-c", _APP_DRIVER, db, side.tokens[0], f"POST {bodies}"]
    done = subprocess.run(
        [*valgrind, *driver, str(size), "1"],
        env={**os.environ, **side.env},
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    found = _COLLECTED.findall(done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{side.name}: the run under callgrind failed:\n{done.stderr[-3000:]}")
    return int(found[-1])


if __name__ == "__main__":
    main()
