"""In-process A/B of embedded ingest at a git revision (HEAD by default) and in the working
tree, interleaved.

Each side's own `ingest_batch` (the revision's service, domain and SQLite adapter, or the
working tree's) stores the same stream of batches (random or time-ordered ids) into its own
database, one batch to each in turn, so both see the same machine noise; no HTTP. Prints
ms/batch per window of stored events.

    .venv/bin/python -m bench.ab_storage --events 3000000
    .venv/bin/python -m bench.ab_storage --events 2000000 --ids sequential --revision main
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from voxmeter.adapters.sqlite import SqliteStorage
from voxmeter.entrypoints.wire.codec import EventIn
from voxmeter.service.context import Context

BATCH = 10_000


def head_package(revision: str) -> str:
    """The package as committed at `revision`, importable as `head_voxmeter`; its name."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", revision, "src/voxmeter"], cwd=root, capture_output=True, check=True
    ).stdout
    place = Path(tempfile.mkdtemp(prefix="ab_storage_"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(place, filter="data")
    package = place / "head_voxmeter"
    (place / "src" / "voxmeter").rename(package)
    for module in package.rglob("*.py"):
        text = module.read_text(encoding="utf-8")
        text = text.replace("from voxmeter", "from head_voxmeter")
        module.write_text(text.replace("import voxmeter", "import head_voxmeter"), "utf-8")
    sys.path.insert(0, str(place))
    return "head_voxmeter"


Ingest = Callable[..., object]


def side(package: str) -> tuple[type[SqliteStorage], type[Context], Ingest, Callable[..., object]]:
    """A package's storage class, Context, ingest_batch and create_operation."""

    def load(module: str, name: str) -> Any:
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return (
        load("adapters.sqlite", "SqliteStorage"),
        load("service.context", "Context"),
        load("service.ingest", "ingest_batch"),
        load("service.tenancy", "create_operation"),
    )


def batch(number: int, sequential: bool) -> list[EventIn]:
    """Random (or time-ordered) ids, all on one day of May 2026."""
    raw = os.urandom(16 * BATCH)
    ids = [
        f"evt-{number * BATCH + i:014d}" if sequential else raw[16 * i : 16 * i + 16].hex()
        for i in range(BATCH)
    ]
    when = datetime(2026, 5, 1 + number * BATCH // 500_000 % 20, tzinfo=UTC)
    return [
        EventIn(
            id=ids[i],
            product="ivr_minutes",
            time=when,
            quantity=Decimal("1.5"),
            subject=None,
        )
        for i in range(BATCH)
    ]


class _Clock:
    """Late May 2026, fixed: every day of the month is open."""

    def __call__(self) -> int:
        return int(datetime(2026, 5, 28, 12, tzinfo=UTC).timestamp() * 1_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--window", type=int, default=500_000)
    parser.add_argument("--revision", default="HEAD")
    parser.add_argument("--ids", choices=["uuid4", "sequential"], default="uuid4")
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="commit without fsync on both sides (synchronous=NORMAL): the difference in work "
        "done, without the disk's noise",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="voxmeter-ab-"))
    contexts: dict[str, Any] = {}
    ingests: dict[str, Ingest] = {}
    ops: dict[str, Any] = {}
    for name, package in (("head", head_package(args.revision)), ("tree", "voxmeter")):
        storage_class, context_class, ingests[name], create = side(package)
        catalog = importlib.import_module(f"{package}.domain.catalog").Catalog.load()
        storage = storage_class(str(folder / f"{name}.db"), durable=not args.no_fsync)
        storage.migrate()
        contexts[name] = context_class(storage=storage, catalog=catalog, clock=_Clock())
        ops[name] = create(contexts[name], "acme", "9901", "UTC")
    spent: dict[str, list[float]] = {name: [] for name in contexts}
    # This thread's CPU time per batch too: on a shared machine the wall time mostly measures
    # waiting for a core and the disk, which both sides do alike.
    cpu: dict[str, list[float]] = {name: [] for name in contexts}
    for n in range(args.events // BATCH):
        events = batch(n, args.ids == "sequential")
        order = list(contexts) if n % 2 == 0 else list(reversed(contexts))  # neither goes first
        for name in order:
            ctx = contexts[name]
            start, start_cpu = time.perf_counter(), time.thread_time()
            ingests[name](ctx, ops[name], events)
            spent[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((time.thread_time() - start_cpu) * 1000)
        if (n + 1) * BATCH % args.window == 0:
            last = args.window // BATCH
            means = {k: statistics.fmean(v[-last:]) for k, v in spent.items()}
            cpus = {k: statistics.fmean(v[-last:]) for k, v in cpu.items()}
            print(
                f"{(n + 1) * BATCH:>10,} events: "
                + ", ".join(f"{k} {m:.0f} ms/batch ({cpus[k]:.1f} CPU)" for k, m in means.items())
                + f", tree/head {means['tree'] / means['head']:.2f}"
                + f" (CPU {cpus['tree'] / cpus['head']:.3f})",
                flush=True,
            )
    for name, times in spent.items():
        print(
            f"{name}: mean {statistics.fmean(times):.0f} ms/batch, max {max(times):.0f}, "
            f"CPU mean {statistics.fmean(cpu[name]):.1f} ms/batch, "
            f"median {statistics.median(cpu[name]):.1f}"
        )
    head, tree = statistics.fmean(cpu["head"]), statistics.fmean(cpu["tree"])
    print(f"CPU tree/head {tree / head:.3f}; throughput tree/head {head / tree:.3f}")


if __name__ == "__main__":
    main()
