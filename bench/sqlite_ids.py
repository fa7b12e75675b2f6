"""SQLite alone: cost of deduplicating random event ids, v1's unique index vs id levels.

The levels here are keyed by the id text (the first prototype); the adapter's schema v2 keys
them by a 64-bit hash, 2.5 times smaller, and appends time-ordered ids to a table of their own.

Two databases are prefilled with `--rows` events (random ids), then batches of 10,000 new
random ids go to each in turn (interleaved, so both see the same machine noise), each batch
one durable transaction (WAL, synchronous=FULL) as the server commits it. Prints ms/batch.

    .venv/bin/python -m bench.sqlite_ids --rows 3000000 --batches 200
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BATCH = 10_000
EVENTS = (
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, operation_id INTEGER NOT NULL,"
    " id TEXT NOT NULL, product_id INTEGER NOT NULL, time INTEGER NOT NULL,"
    " quantity INTEGER NOT NULL, subject TEXT, received INTEGER NOT NULL, voided INTEGER)"
)
PREFILL = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
    " INSERT INTO events (operation_id, id, product_id, time, quantity, received)"
    " SELECT 1, lower(hex(randomblob(16))), i % 4, i, 1500000, 0 FROM n"
)
INSERT = (
    "INSERT INTO events (operation_id, id, product_id, time, quantity, subject, received)"
    " SELECT 1, e.value, e.key % 4, 1700000000 + e.key, 1500000, NULL, 0 FROM json_each(?) AS e"
)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -16384")
    return conn


class Unique:
    """Today's schema: a unique (operation_id, id) index, ON CONFLICT DO NOTHING."""

    def __init__(self, path: Path, rows: int) -> None:
        self.conn = connect(path)
        self.conn.execute(EVENTS)
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute(PREFILL, (rows,))
        self.conn.execute("CREATE UNIQUE INDEX events_by_id ON events (operation_id, id)")
        self.conn.execute("PRAGMA synchronous = FULL")

    def batch(self, ids: list[str]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT + " WHERE true ON CONFLICT DO NOTHING", (json.dumps(ids),))
        conn.execute("COMMIT")


class Levels:
    """(operation_id, id) -> seq in levels: L0 small and hot, merged in key order into bigger
    levels; a batch whose ids all sort after every stored id goes straight to the last level."""

    def __init__(self, path: Path, rows: int, sizes: list[int]) -> None:
        self.conn = conn = connect(path)
        self.sizes = sizes  # the most keys of each level but the last
        conn.execute(EVENTS)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(PREFILL, (rows,))
        self.last = len(sizes)
        for level in range(self.last + 1):
            conn.execute(
                f"CREATE TABLE ids_{level} (operation_id INTEGER NOT NULL, id TEXT NOT NULL,"
                " seq INTEGER NOT NULL, PRIMARY KEY (operation_id, id)) WITHOUT ROWID"
            )
        conn.execute(
            f"INSERT INTO ids_{self.last} SELECT operation_id, id, seq FROM events ORDER BY 1, 2"
        )
        self.counts = [0] * len(sizes) + [rows]
        conn.execute("PRAGMA synchronous = FULL")
        self.lookup = " UNION ALL ".join(
            f"SELECT id FROM ids_{level} WHERE operation_id = 1"
            " AND id IN (SELECT value FROM json_each(?1))"
            for level in range(self.last + 1)
        )
        self.highest = " UNION ALL ".join(
            f"SELECT max(id) FROM ids_{level} WHERE operation_id = 1"
            for level in range(self.last + 1)
        )
        self.merges = 0
        self.direct = 0

    def batch(self, ids: list[str]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        packed = json.dumps(ids)
        tops = [r[0] for r in conn.execute(self.highest) if r[0] is not None]
        level = 0
        if not tops or min(ids) > max(tops):
            level = self.last
            self.direct += 1
        else:
            hits = [row[0] for row in conn.execute(self.lookup, (packed,))]
            assert not hits
        first = int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]) + 1
        conn.execute(INSERT, (packed,))
        conn.execute(
            f"INSERT INTO ids_{level} SELECT 1, value, ?2 + key FROM json_each(?1)",
            (packed, first),
        )
        self.counts[level] += len(ids)
        self._merge(0)
        conn.execute("COMMIT")

    def _merge(self, level: int) -> None:
        while level < self.last and self.counts[level] >= self.sizes[level]:
            self.conn.execute(f"INSERT INTO ids_{level + 1} SELECT * FROM ids_{level}")
            self.conn.execute(f"DELETE FROM ids_{level}")
            self.counts[level + 1] += self.counts[level]
            self.counts[level] = 0
            self.merges += 1
            level += 1


def uuid_ids(count: int) -> list[str]:
    raw = os.urandom(16 * count)
    return [raw[16 * i : 16 * i + 16].hex() for i in range(count)]


def sequential_ids(batch_no: int) -> list[str]:
    """After every prefilled id (those are hex digits): 'z' sorts last."""
    return [f"z{batch_no * BATCH + i:014d}" for i in range(BATCH)]


def timed(batch: Callable[[list[str]], None], ids: list[str]) -> float:
    start = time.perf_counter()
    batch(ids)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--sizes", default="50000,1000000", help="level sizes but the last")
    parser.add_argument("--ids", choices=["uuid4", "sequential"], default="uuid4")
    parser.add_argument("--skip-unique", action="store_true")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="voxmeter-ids-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    start = time.perf_counter()
    levels = Levels(folder / "levels.db", args.rows, sizes)
    variants: dict[str, Callable[[list[str]], None]] = {"levels": levels.batch}
    if not args.skip_unique:
        variants["unique"] = Unique(folder / "unique.db", args.rows).batch
    print(f"prefilled {args.rows:,} rows in {time.perf_counter() - start:.0f} s; sizes {sizes}")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for n in range(args.batches):
        for name, batch in variants.items():
            ids = uuid_ids(BATCH) if args.ids == "uuid4" else sequential_ids(n)
            times[name].append(timed(batch, ids))
        if (n + 1) % 20 == 0:
            print(
                f"{n + 1:>5} batches: "
                + ", ".join(
                    f"{k} mean {statistics.fmean(v[-20:]):.0f} max {max(v[-20:]):.0f} ms"
                    for k, v in times.items()
                ),
                flush=True,
            )
    for name, spent in times.items():
        print(
            f"{name}: mean {statistics.fmean(spent):.1f} ms/batch, median "
            f"{statistics.median(spent):.1f}, max {max(spent):.0f}; "
            f"merges {levels.merges}, direct {levels.direct}"
        )


if __name__ == "__main__":
    main()
