"""A bounded least-recently-used map, for every cache the server keeps in memory.

Each cache is filled by requests, so each is bounded by entries and, where its values vary in
size, by bytes: the least recently used entries go first, one at a time. Emptying a cache
when it is full would instead make its size follow whatever the last burst put in it, and
drop the entries still in use together with the junk.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `max_entries` entries and `max_bytes` of values (as `size_of` counts them)."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int | None = None,
        size_of: Callable[[V], int] | None = None,
    ) -> None:
        if max_entries < 1 or (max_bytes is None) != (size_of is None):
            raise ValueError("max_entries >= 1, and max_bytes together with size_of")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """Without the lock: the hottest lookups (every billing read) stay a dict lookup. Keys
        are strings, bytes, numbers or tuples of them, so each step below is one operation
        under the interpreter lock (`put` keeps its lock for the steps that must go together)."""
        found = self._entries.get(key)
        if found is None:
            return None
        try:
            self._entries.move_to_end(key)
        except KeyError:
            return None  # dropped by another thread meanwhile
        return found[0]

    def put(self, key: K, value: V) -> None:
        size = self._size_of(value) if self._size_of is not None else 0
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if self.max_bytes is not None and size > self.max_bytes:
                return  # larger than the whole cache: not kept
            self._entries[key] = (value, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def pop(self, key: K) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The values' size, as `size_of` counts it (0 without it)."""
        return self._bytes
