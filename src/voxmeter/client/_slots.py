"""Per-token in-flight limits inside one process.

The hosted API refuses a third simultaneous request per token, and voxmeter does the same, so
every client object for the same (base URL, token) in this process shares one semaphore: several
clients or threads cannot together exceed the limit. Tokens are keyed by their SHA-256 so the
registry never holds a secret. Across processes, see `_process_slots` (used by the CLI).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

MAX_IN_FLIGHT = 2
"""The hosted API's limit of simultaneous requests per token."""

_Key = tuple[str, str]

_lock = threading.Lock()
_sync: dict[_Key, threading.BoundedSemaphore] = {}


def check_limit(max_in_flight: int) -> int:
    if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
        raise ValueError(f"max_in_flight must be between 1 and {MAX_IN_FLIGHT}")
    return max_in_flight


def key(base_url: str, token: str) -> _Key:
    return base_url.rstrip("/"), hashlib.sha256(token.encode()).hexdigest()


def sync_slot(slot_key: _Key, limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore of a token, for sync and async clients alike; the first client
    to ask sets its size."""
    with _lock:
        return _sync.setdefault(slot_key, threading.BoundedSemaphore(limit))


@asynccontextmanager
async def held_async(slot: threading.BoundedSemaphore, poll: float = 0.002) -> AsyncIterator[None]:
    """Hold the token's process-wide semaphore from async code without blocking the event loop.

    Sync and async clients (and every event loop) share one semaphore per token, so together
    they never exceed the limit; when it is taken the coroutine polls instead of blocking.
    """
    while not slot.acquire(blocking=False):
        await asyncio.sleep(poll)
    try:
        yield
    finally:
        slot.release()
