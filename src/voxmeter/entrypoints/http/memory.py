"""Keeping the server's resident memory flat under sustained ingest (glibc only; elsewhere a no-op).

glibc gives each thread its own malloc arena (64 MiB) and keeps freed memory in it: with ingest
on worker threads a random-id run reached 250 MiB. Two arenas and an occasional trim keep it
well under 200 MiB. Trimming often is not free (the next batches fault the pages back in: once a
second cost 15 % of ingest throughput), hence every 15 seconds, off the event loop.
"""

from __future__ import annotations

import ctypes

_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h
TRIM_INTERVAL = 15.0


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
        libc.mallopt(_M_ARENA_MAX, 2)


def release_free_memory() -> None:
    """Give free heap pages back to the system."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
