"""Keeping the server's resident memory flat under sustained ingest (glibc only; elsewhere a no-op).

glibc gives each thread a malloc arena of 64 MiB and keeps freed memory in it, and after large
frees it raises its mmap threshold, so the 1-2 MiB request bodies of later batches fragment the
heap: a random-id ingest run reached 250 MiB. One arena, a fixed threshold and trimming free
pages once a second keep it near 120 MiB (bench/ingest.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def tune_malloc() -> None:
    """Call before any thread starts."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, 1)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def release_free_memory() -> None:
    """Give free heap pages back to the system (a few milliseconds at most)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
