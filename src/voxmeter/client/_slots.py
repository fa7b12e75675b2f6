"""Per-token in-flight limits inside one process.

The hosted API refuses a third simultaneous request per token, and voxmeter does the same, so
every client object for the same (base URL, token) in this process shares one semaphore: several
clients or threads cannot together exceed the limit. Tokens are keyed by their SHA-256 so the
registry never holds a secret. Across processes this is not enforced (a later file lock).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref

MAX_IN_FLIGHT = 2
"""The hosted API's limit of simultaneous requests per token."""

_Key = tuple[str, str]

_lock = threading.Lock()
_sync: dict[_Key, threading.BoundedSemaphore] = {}
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def check_limit(max_in_flight: int) -> int:
    if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
        raise ValueError(f"max_in_flight must be between 1 and {MAX_IN_FLIGHT}")
    return max_in_flight


def key(base_url: str, token: str) -> _Key:
    return base_url.rstrip("/"), hashlib.sha256(token.encode()).hexdigest()


def sync_slot(slot_key: _Key, limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore of a token; the first client to ask sets its size."""
    with _lock:
        return _sync.setdefault(slot_key, threading.BoundedSemaphore(limit))


def async_slot(slot_key: _Key, limit: int) -> asyncio.Semaphore:
    """The same for the running event loop (asyncio semaphores belong to one loop)."""
    loop = asyncio.get_running_loop()
    with _lock:
        per_loop = _async.setdefault(loop, {})
        return per_loop.setdefault(slot_key, asyncio.Semaphore(limit))
