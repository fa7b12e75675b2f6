"""In-process A/B of the SQLite adapter at HEAD (git) and in the working tree, interleaved.

The service's `ingest_batch` stores the same stream of batches (random or time-ordered ids)
into two databases, one batch to each in turn, so both see the same machine noise; no HTTP.
Prints ms/batch per window of stored events.

    .venv/bin/python -m bench.ab_storage --events 3000000
    .venv/bin/python -m bench.ab_storage --events 2000000 --ids sequential
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
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from voxmeter.adapters.sqlite import SqliteStorage
from voxmeter.domain.catalog import Catalog
from voxmeter.entrypoints.wire.codec import EventIn
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import create_operation

BATCH = 10_000


def head_storage_class(revision: str) -> type[SqliteStorage]:
    """The adapter's SqliteStorage as committed at `revision`: that revision's whole package,
    imported as `head_voxmeter` (the adapter is several modules, with shared ones in sql/)."""
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
    cls: type[SqliteStorage] = importlib.import_module(
        "head_voxmeter.adapters.sqlite"
    ).SqliteStorage
    return cls


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
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="voxmeter-ab-"))
    contexts: dict[str, Context] = {}
    for name, cls in (("head", head_storage_class(args.revision)), ("tree", SqliteStorage)):
        storage = cls(str(folder / f"{name}.db"))
        storage.migrate()
        contexts[name] = Context(storage=storage, catalog=Catalog.load(), clock=_Clock())
    ops = {name: create_operation(ctx, "acme", "9901", "UTC") for name, ctx in contexts.items()}
    spent: dict[str, list[float]] = {name: [] for name in contexts}
    for n in range(args.events // BATCH):
        events = batch(n, args.ids == "sequential")
        for name, ctx in contexts.items():
            start = time.perf_counter()
            ingest_batch(ctx, ops[name], events)  # type: ignore[arg-type]
            spent[name].append((time.perf_counter() - start) * 1000)
        if (n + 1) * BATCH % args.window == 0:
            last = args.window // BATCH
            means = {k: statistics.fmean(v[-last:]) for k, v in spent.items()}
            print(
                f"{(n + 1) * BATCH:>10,} events: "
                + ", ".join(f"{k} {m:.0f} ms/batch" for k, m in means.items())
                + f", tree/head {means['tree'] / means['head']:.2f}",
                flush=True,
            )
    for name, times in spent.items():
        print(f"{name}: mean {statistics.fmean(times):.0f} ms/batch, max {max(times):.0f}")


if __name__ == "__main__":
    main()
