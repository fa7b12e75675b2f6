"""Statements kept between reads for as long as the storage `version()` holds.

A draft depends on the operation (its name, server, currency and timezone are in it), the
month, the figures and the prices; the version changes with every figure and price, so a draft
read under one version is the draft of every later read under it, but for its forecast total,
which `Draft` adds per read. A final statement is stored bytes, kept the same way. Least
recently used statements make room for new ones.
"""

from __future__ import annotations

from collections.abc import Hashable

from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.lru import LruCache
from voxmeter.service.statements import Reading, StatementReads, month_reading

STATEMENT_CACHE_ENTRIES = 4096
STATEMENT_CACHE_BYTES = 8 * 1024 * 1024
"""The cache's bounds: a statement of the 27 catalog products is about 5 KB (a draft is kept
as its bytes, `Draft.compact`), so the bytes bound comes first, at about 1,700 statements."""

Key = tuple[Operation, int]


def _size(entry: tuple[Hashable, Reading]) -> int:
    reading = entry[1]
    return len(reading) if isinstance(reading, bytes) else len(reading.head)


class StatementCache:
    """Readings by (operation, month), each under the storage version it was read at."""

    def __init__(
        self, entries: int = STATEMENT_CACHE_ENTRIES, max_bytes: int = STATEMENT_CACHE_BYTES
    ) -> None:
        self._readings: LruCache[Key, tuple[Hashable, Reading]] = LruCache(
            entries, max_bytes, _size
        )

    def lookup(
        self, ctx: Context[StatementReads], op: Operation, month: int
    ) -> tuple[Hashable, Reading | None]:
        """The storage version now, and the reading if one is kept under it (no other storage
        read: on SQLite, cheap enough for the event loop). Read the version and fill on one
        thread, or pass this version to `fill`: an embedded reader's version counts commits
        as its own connection saw them, so two threads' versions are not comparable."""
        version = ctx.storage.version()
        found = self._readings.get((op, month))
        return version, found[1] if found is not None and found[0] == version else None

    def fill(
        self, ctx: Context[StatementReads], op: Operation, month: int, version: Hashable
    ) -> Reading:
        """Read the statement (blocking) and keep it under `version`, read before it: a kept
        reading is never older than its key."""
        reading = month_reading(ctx, op, month)
        kept = reading if isinstance(reading, bytes) else reading.compact()
        self._readings.put((op, month), (version, kept))
        return reading

    def read(self, ctx: Context[StatementReads], op: Operation, month: int) -> Reading:
        """The reading, kept or read now (blocking) and kept."""
        version, reading = self.lookup(ctx, op, month)
        return reading if reading is not None else self.fill(ctx, op, month, version)
