"""The bounded caches: least recently used entries go first, by count and by bytes."""

from __future__ import annotations

import sys
import threading

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


def test_lookups_from_other_threads_keep_it_consistent() -> None:
    """`get` takes no lock: threads reading and moving entries while others add and drop them
    leave the bounds and the byte count exact, and a lookup finds the value put or nothing."""
    cache: LruCache[tuple[int, bytes], bytes] = LruCache(50, max_bytes=2_000, size_of=len)
    wrong: list[object] = []

    def writer(seed: int) -> None:
        for n in range(4_000):
            key = (n % 97, b"%d" % seed)
            cache.put(key, b"v" * (key[0] % 60))

    def reader(seed: int) -> None:
        for n in range(8_000):
            key = (n % 97, b"%d" % (n % 2))
            found = cache.get(key)
            if found is not None and found != b"v" * (key[0] % 60):
                wrong.append((key, found))

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=writer, args=(s,)) for s in range(2)]
        threads += [threading.Thread(target=reader, args=(s,)) for s in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert wrong == []
    assert len(cache) <= 50
    kept = [cache.get((k, b"%d" % s)) for k in range(97) for s in range(2)]
    assert cache.bytes == sum(len(v) for v in kept if v is not None) <= 2_000
