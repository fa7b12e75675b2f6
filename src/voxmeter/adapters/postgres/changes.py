"""Change notifications from the database, so a process can trust its cached billing replies.

Every statement that writes a figure's table (meters, subjects, frozen figures, closed months)
sends a NOTIFY on the deployment's channel from a statement-level trigger (schema migration 8):
every writer is caught, the CLI and older processes included, and PostgreSQL delivers it only
when the transaction commits, so a reader never caches old figures under a newer generation.

`ChangeListener` keeps one connection per process listening: `generation` changes with every
notification, and is None while the listener is not connected (connecting, lost, or the server
not answering its keep-alive within the timeout); cached replies are then not used. Each
(re)connection starts a new generation, so what was cached before it is never used again.
"""

from __future__ import annotations

import logging
import time

import anyio
import psycopg
from psycopg import sql

log = logging.getLogger("voxmeter.changes")

KEEPALIVE = 1.0  # seconds without a notification before the connection is checked
RETRY = 0.5  # seconds between connection attempts
_WARN_EVERY = 10.0


def channel(deployment: str) -> str:
    """The deployment's notification channel (the trigger builds the same name)."""
    return f"voxmeter_{deployment}"


class ChangeListener:
    """A process's view of other writers' commits: a generation, or None when unknown."""

    def __init__(self, conninfo: str, deployment: str, *, timeout: float = 3.0) -> None:
        self._conninfo = conninfo
        self._channel = channel(deployment)
        self._timeout = timeout
        self._count = 0
        self._generation: int | None = None
        self._warned = 0.0

    @property
    def generation(self) -> int | None:
        return self._generation

    def _advance(self) -> None:
        self._count += 1
        self._generation = self._count

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after any failure."""
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self._generation = None
                self._warn(exc)
            self._generation = None
            await anyio.sleep(RETRY)

    async def _listen(self) -> None:
        with anyio.fail_after(self._timeout):
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=max(1, round(self._timeout))
            )
        try:
            with anyio.fail_after(self._timeout):
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._advance()  # listening from here on: what was cached before is dropped
            while True:
                async for _ in conn.notifies(timeout=KEEPALIVE):
                    self._advance()
                with anyio.fail_after(self._timeout):
                    await conn.execute("SELECT 1")
        finally:
            self._generation = None
            await conn.close()

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            log.warning(
                "change notifications: %s (%s); billing replies are read from the database "
                "until they are back",
                type(exc).__name__,
                exc,
            )
