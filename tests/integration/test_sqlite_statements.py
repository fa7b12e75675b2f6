"""Batches of any size are inserted through a few statement shapes only: the connection caches
every prepared statement it ran, and a statement of thousands of rows holds megabytes, so a
distinct statement per batch size grew the embedded server by ~1 MB for every new size."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from voxmeter.adapters.sqlite import storage

ALLOWED = {storage._CHUNK} | {1 << bit for bit in range(storage._CHUNK.bit_length() - 1)}


@given(st.integers(min_value=0, max_value=100_000))
def test_every_count_is_cut_into_a_few_allowed_sizes(count: int) -> None:
    sizes = storage._chunk_sizes(count)
    assert sum(sizes) == count
    assert set(sizes) <= ALLOWED
    assert len(ALLOWED) == 13


def test_memory_stays_flat_across_hundreds_of_batch_sizes(tmp_path: Path) -> None:
    """In a fresh process: 200 batches of random sizes up to 10,000 events."""
    script = textwrap.dedent(
        f"""
        import random, resource
        from voxmeter.adapters.sqlite import SqliteStorage
        from voxmeter.domain.events import UsageEvent
        from voxmeter.entrypoints.http import memory
        memory.tune_malloc()  # as `voxmeter serve` does
        store = SqliteStorage({str(tmp_path / "v.db")!r})
        store.migrate()
        rng, first = random.Random({random.randrange(10**6)}), 0
        for _ in range(200):
            size = rng.randint(1, 10_000)
            batch = [
                UsageEvent(f"e{{n:012d}}", "ivr_minutes", n, 24316, 1_000_000, None)
                for n in range(first, first + size)
            ]
            with store.write() as tx:
                assert len(tx.insert_new(1, batch, 1)) == size
            first += size
        store.close()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=240
    )
    peak_mib = int(done.stdout.strip())
    # About 50 MiB with the bounded shapes; over 200 MiB with one statement per size.
    assert peak_mib < 150, f"peak RSS {peak_mib} MiB"
