"""The bounded caches: least recently used entries go first, by count and by bytes."""

from __future__ import annotations

import pytest

from voxmeter.service.lru import LruCache


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LruCache[str, int] = LruCache(3)
    for key in "abc":
        cache.put(key, ord(key))
    assert cache.get("a") == ord("a")  # now the most recent
    cache.put("d", 4)
    assert len(cache) == 3
    assert cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == [ord("a"), ord("c"), 4]


def test_bytes_are_bounded_too() -> None:
    cache: LruCache[int, bytes] = LruCache(100, max_bytes=10, size_of=len)
    for key in range(5):
        cache.put(key, b"xyz")
    assert cache.bytes == 9
    assert len(cache) == 3
    assert [cache.get(k) for k in range(5)] == [None, None, b"xyz", b"xyz", b"xyz"]
    cache.put(2, b"0123456789")  # replaces, then evicts the others to fit
    assert cache.bytes == 10
    assert len(cache) == 1
    cache.put(9, b"0123456789a")  # larger than the whole cache: not kept
    assert cache.get(9) is None
    assert cache.bytes == 10


def test_junk_keys_never_grow_it() -> None:
    cache: LruCache[bytes, bytes] = LruCache(1000, max_bytes=64 * 1024, size_of=len)
    for n in range(20_000):
        cache.put(b"%d" % n, b"v" * 100)
        assert len(cache) <= 1000
        assert cache.bytes <= 64 * 1024
    assert cache.get(b"19999") == b"v" * 100


def test_pop_and_clear() -> None:
    cache: LruCache[str, bytes] = LruCache(10, max_bytes=100, size_of=len)
    cache.put("a", b"12")
    cache.put("b", b"345")
    cache.pop("a")
    cache.pop("missing")
    assert cache.bytes == 3
    assert cache.get("a") is None
    cache.clear()
    assert len(cache) == 0
    assert cache.bytes == 0


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        LruCache(0)
    with pytest.raises(ValueError):
        LruCache(10, max_bytes=5)
