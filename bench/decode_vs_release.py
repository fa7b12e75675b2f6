"""CPU time of decoding one JSON upload, this tree against an earlier release.

The part of ingest that `bench/vs_release_app.py` cannot separate from storage: each tree's own
`decode_json` (wherever its codec lives) timed in a process of its own, on the same batches
`vs_release` sends, runs alternating between the trees; each run keeps its best timing.

    .venv/bin/python -m bench.decode_vs_release 59cd457
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.vs_release import ROOT, bodies, clean_environment, event_times, export_tree

# Runs in the measured tree's interpreter: argv is a body file, batches per timing, timings.
# Prints the best CPU milliseconds per batch.
_DRIVER = """
import importlib, sys, time
for name in ("voxmeter.entrypoints.wire.codec", "voxmeter.service.codec"):
    try:
        codec = importlib.import_module(name)
        break
    except ImportError:
        continue
body = open(sys.argv[1], "rb").read()
per, timings = int(sys.argv[2]), int(sys.argv[3])
codec.decode_json(body)  # warm-up: anything built on first use
best = None
for _ in range(timings):
    started = time.process_time()
    for _ in range(per):
        codec.decode_json(body)
    spent = (time.process_time() - started) / per
    best = spent if best is None else min(best, spent)
print(best * 1e3)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the earlier release: a git ref of this repository")
    parser.add_argument("--rounds", type=int, default=8, help="runs of each tree per size")
    parser.add_argument("--timings", type=int, default=15, help="timings per run (best kept)")
    args = parser.parse_args()
    clean_environment()
    folder = Path(tempfile.mkdtemp(prefix="voxmeter-decode-vs-release-"))
    try:
        old_src, commit = export_tree(args.ref, folder / "old-tree")
        trees = {"old": old_src, "new": ROOT / "src"}
        print(f"decode_json CPU per batch: old = {args.ref} ({commit}), new = this tree")
        for size, per in ((1_000, 20), (10_000, 3)):
            body = folder / f"b{size}.json"
            body.write_bytes(bodies(size, 1, 0, event_times(size))[0])
            taken: dict[str, list[float]] = {"old": [], "new": []}
            for number in range(args.rounds):
                for name in ("old", "new") if number % 2 == 0 else ("new", "old"):
                    taken[name].append(run(trees[name], body, per, args.timings))
            ratios = [n / o for o, n in zip(taken["old"], taken["new"], strict=True)]
            print(
                f"{size:>6} events ({body.stat().st_size:,} bytes): old "
                f"{statistics.median(taken['old']):.3f} new {statistics.median(taken['new']):.3f}"
                f" ms; new/old {statistics.median(ratios):.3f} "
                f"({min(ratios):.3f}-{max(ratios):.3f})",
                flush=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(src: Path, body: Path, per: int, timings: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(body), str(per), str(timings)],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
