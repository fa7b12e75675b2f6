"""`version()` and the month cache it keys, for both SQL adapters.

A reader thread caches each month it read for as long as the version stays: the count of this
process's commits (bumped right after each commit, before the request that made it is
answered) and the database's count of everyone's commits, read at most once a millisecond per
thread.
"""

from __future__ import annotations

import threading
import time

from voxmeter.service.lru import LruCache
from voxmeter.service.ports import METER_CACHE_ENTRIES, MonthMeters

OTHER_WRITERS_CHECK = 0.001  # seconds between reads of other processes' commit count


class MonthCache:
    _local: threading.local
    _generation: int

    def _others_version(self) -> int:
        """The database's count of commits by every process."""
        raise NotImplementedError

    def _read_month(
        self, operation_id: int, month: int, products: tuple[str, ...], levels: tuple[str, ...]
    ) -> MonthMeters:
        """One consistent read of a month (see `MeterReads.month_meters`)."""
        raise NotImplementedError

    def version(self) -> tuple[int, int]:
        """(commits of this process, the database's count of everyone's)."""
        local = self._local
        now = time.monotonic()
        if now - getattr(local, "checked", -1.0) > OTHER_WRITERS_CHECK:
            local.data_version = self._others_version()
            local.checked = now
        return self._generation, int(local.data_version)

    def refresh(self) -> None:
        """The next `version()` of this thread reads the database's commit count afresh."""
        self._local.checked = -1.0

    def month_meters(
        self, operation_id: int, month: int, products: tuple[str, ...], levels: tuple[str, ...]
    ) -> MonthMeters:
        """Cached per reader thread, for as long as `version()` stays the same."""
        local = self._local
        version = self.version()  # before reading: the cached data is never older than its key
        cache: LruCache[object, MonthMeters] | None = getattr(local, "meters", None)
        if cache is None or local.meters_version != version:
            cache = local.meters = LruCache(METER_CACHE_ENTRIES)
            local.meters_version = version
        key = (operation_id, month, products, levels)
        found = cache.get(key)
        if found is None:
            found = self._read_month(operation_id, month, products, levels)
            cache.put(key, found)
        return found
