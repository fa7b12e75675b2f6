"""Batches of any size are inserted through a few statement shapes only: the connection caches
every prepared statement it ran, and a statement of thousands of rows holds megabytes, so a
distinct statement per batch size grew the embedded server by ~1 MB for every new size (200
batches of random sizes: 235 MiB peak, against 51 MiB with the 13 shapes). Each size comes in
two forms, with the subjects bound or written as NULL for a chunk that has none."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from voxmeter.adapters.sqlite import SqliteStorage, statements
from voxmeter.domain.events import UsageEvent

ALLOWED = {statements._CHUNK} | {1 << bit for bit in range(statements._CHUNK.bit_length() - 1)}


@given(st.integers(min_value=0, max_value=100_000))
def test_every_count_is_cut_into_a_few_allowed_sizes(count: int) -> None:
    sizes = statements._chunk_sizes(count)
    assert sum(sizes) == count
    assert set(sizes) <= ALLOWED
    assert len(ALLOWED) == 13


def test_hundreds_of_batch_sizes_run_through_at_most_13_statements(tmp_path: Path) -> None:
    store = SqliteStorage(str(tmp_path / "v.db"))
    store.migrate()
    rows_per_insert: set[int] = set()  # the trace shows each statement with its values

    def trace(sql: str) -> None:
        if sql.startswith("INSERT INTO events "):
            rows_per_insert.add(sql.count("),(") + 1)

    store._writer.set_trace_callback(trace)
    rng, first = random.Random(), 0
    for _ in range(200):
        size = rng.randint(1, 10_000)
        batch = [
            UsageEvent(f"e{n:012d}", "ivr_minutes", n, 24316, 1_000_000, None)
            for n in range(first, first + size)
        ]
        with store.write() as tx:
            assert len(tx.insert_new(1, batch, 1)) == size
        first += size
    store.close()
    assert rows_per_insert
    assert rows_per_insert <= ALLOWED
    listed = SqliteStorage(str(tmp_path / "v.db"))
    assert sum(1 for _ in listed.events(1, 0, first, None, None, first)) == first
    listed.close()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([None, "agent-1", "", "ünï"]), min_size=1, max_size=5_000))
def test_subjects_are_stored_as_sent_whether_a_chunk_has_any_or_none(
    subjects: list[str | None],
) -> None:
    folder = tempfile.TemporaryDirectory()
    store = SqliteStorage(str(Path(folder.name) / "v.db"))
    store.migrate()
    # Long runs without a subject, so that whole chunks have none beside chunks that have some.
    sent = [None] * 4_096 + subjects if len(subjects) % 2 else subjects
    batch = [
        UsageEvent(f"e{n:012d}", "agents_seen", n, 24316, 1_000_000, subject)
        for n, subject in enumerate(sent)
    ]
    with store.write() as tx:
        assert len(tx.insert_new(1, batch, 1)) == len(batch)
    stored = [(e.id, e.subject) for e in store.events(1, 0, len(sent), None, None, len(sent))]
    store.close()
    folder.cleanup()
    assert stored == [(e.id, e.subject) for e in batch]
