"""Background re-reads of what admission answers from memory: tokens and the maintenance switch.

Admission on the event loop needs the caller's token and the maintenance switch in memory, each
read less than a second ago. Left to run out, they would send every request of that second to
a worker thread at once (a burst of thread hand-offs each second, per token). Instead, once an
entry is past half its life, the request that notices it asks for a re-read and is answered
from memory meanwhile. The re-reads run in batches on one thread of their own, at most one
batch every `GAP` seconds: every entry asked for meanwhile goes into the next one, so a
thousand tokens in use cost a few thread hand-offs a second, not a thousand. With SQLite the
batches run on the event loop instead, right after the request that asked: its reads are local
file reads, and a thread re-reading while the loop serves requests takes turns with it for the
interpreter lock many times per batch (at 16 connections the 99th percentile of request times
fell by about a sixth once the batches ran on the loop). Entries are never used past their
life, so a revoked token or the maintenance switch still takes effect within a second, and a
stalled database only lets the entries run out (requests then read them on their
own path, with its time limits).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("voxmeter.http")

GAP = 0.2
"""Seconds from one batch's start to the next's at least. Entries are renewed with half their
one-second life left, so one that waits a whole gap is still read again in time."""

MAINTENANCE_KEY = ""
"""The maintenance switch's place among the secrets to re-read (no secret is empty)."""


class Renewals:
    """Collects re-reads on the event loop and runs them in batches, one batch at a time."""

    def __init__(
        self,
        refresh_token: Callable[[str], None],
        refresh_maintenance: Callable[[], None],
        on_loop: bool = False,
    ) -> None:
        self._refresh_token = refresh_token
        self._on_loop = on_loop
        """Re-read on the event loop itself (local SQLite reads, which never wait on a
        network): a batch then costs no thread hand-off, and no contention for the
        interpreter lock with the loop while requests are being served."""
        self._refresh_maintenance = refresh_maintenance
        self._pool: ThreadPoolExecutor | None = None
        self._queued: set[str] = set()
        self._running: frozenset[str] = frozenset()
        self._busy = False
        """A batch is running, or waiting for its gap to pass."""
        self._closed = False
        self._last_start = -GAP

    def token(self, secret: str) -> None:
        if secret:
            self._want(secret)

    def maintenance(self) -> None:
        self._want(MAINTENANCE_KEY)

    def pending(self) -> int:
        """Entries queued or being re-read."""
        return len(self._queued) + len(self._running)

    def _want(self, key: str) -> None:
        if key in self._queued or key in self._running or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on the event loop: the entry runs out and is read on a request's path
        self._queued.add(key)
        if not self._busy:
            self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """The next batch now, or once `GAP` has passed since the last one started."""
        self._busy = True
        wait = self._last_start + GAP - loop.time()
        if wait > 0:
            loop.call_later(wait, self._launch, loop)
        else:
            self._launch(loop)

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed or not self._queued:
            self._busy = False
            return
        if self._pool is None and not self._on_loop:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="voxmeter-renew")
        batch, self._queued = frozenset(self._queued), set()
        self._running = batch
        self._last_start = loop.time()
        if self._on_loop:
            loop.call_soon(self._reread_here, loop, batch)
            return
        done = loop.run_in_executor(self._pool, self._reread, batch)
        done.add_done_callback(lambda _: self._finished(loop))

    def _reread_here(self, loop: asyncio.AbstractEventLoop, batch: frozenset[str]) -> None:
        if not self._closed:
            self._reread(batch)
        self._finished(loop)

    def _reread(self, batch: frozenset[str]) -> None:
        """Each entry on its own, a failure leaving that entry to run out."""
        for key in batch:
            try:
                if key == MAINTENANCE_KEY:
                    self._refresh_maintenance()
                else:
                    self._refresh_token(key)
            except Exception as exc:  # the request that then reads it on its path reports it
                log.debug("background re-read failed: %s", type(exc).__name__)

    def _finished(self, loop: asyncio.AbstractEventLoop) -> None:
        self._running, self._busy = frozenset(), False
        if self._queued and not self._closed and not loop.is_closed():
            self._schedule(loop)

    def close(self) -> None:
        """Stop taking re-reads; a batch running finishes on its own."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._queued.clear()
